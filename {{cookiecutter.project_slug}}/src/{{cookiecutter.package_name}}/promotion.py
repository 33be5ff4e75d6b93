"""Promote a registered version: gate it against the champion, export it, move the alias.

Trainings may run at once. Fitting and logging run side by side; exporting and moving the alias
happen under EXPORT_DIR's lock (exports.locked), and right before each, the alias is read again:
if another training moved it meanwhile, the version is gated again against the new champion.
The alias moves only after the export: it never points at a version that serving does not have.
`export_registered` exports a version straight from the registry (a build from `models:/...`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import mlflow
import skops.io
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.tracking import MlflowClient

from . import data, evaluate, exports, onnx_export
from .config import REGISTERED_URI, TrainSettings
from .serve.errors import one_line
from .tracking import public_uri

CHAMPION = "champion"
REGISTRY_URI_METADATA = "registry_uri"  # MLmodel metadata key of an export
# Gating again when the alias moved, at most this often in a row: trainings finish in seconds,
# so an alias that keeps moving is a loop somewhere, not a queue.
MAX_REGATES = 5


class ExportError(RuntimeError):
    """The passing version could not be exported to EXPORT_DIR; the alias was not moved."""


@dataclass
class Candidate:
    """A registered version and its gate, kept as tagged: the verdict of the latest look."""

    settings: TrainSettings
    parts: data.Split
    signature: ModelSignature
    scores: dict[str, float]
    version: str
    run_id: str
    gate: evaluate.GateResult = field(init=False)
    _tagged_champion: bool = field(init=False, default=False)

    def judge(self, champion: evaluate.Champion | None) -> evaluate.GateResult:
        """The gate's verdict on this version's scores against `champion`."""
        settings = self.settings
        return evaluate.quality_gate(
            self.scores, settings.gate_metric, settings.gate_min, champion, settings.gate_tolerance
        )

    def record(self, gate: evaluate.GateResult) -> None:
        """Make `gate` the verdict: tags on the version, the champion's value on the run."""
        self.gate = gate
        client, name = MlflowClient(), self.settings.model_name
        for key, tag in _gate_tags(gate).items():
            client.set_model_version_tag(name, self.version, key, tag)
        champion = gate.champion
        if champion is not None:
            client.set_tag(self.run_id, "champion_version", champion.version)
            if champion.value is not None:
                client.log_metric(self.run_id, f"champion_{gate.metric}", champion.value)
        elif self._tagged_champion:  # an earlier look tagged a champion that is gone now
            for key in CHAMPION_TAGS:
                client.delete_model_version_tag(name, self.version, key)
            client.delete_tag(self.run_id, "champion_version")
        self._tagged_champion = champion is not None

    def regate(self) -> evaluate.GateResult:
        """Gate again while the alias points elsewhere than at the champion last scored."""
        for _ in range(MAX_REGATES):
            scored = self.gate.champion.version if self.gate.champion else None
            if champion_version(self.settings.model_name) == scored:
                return self.gate
            self.record(self.judge(score_champion(self.settings, self.parts, self.signature)))
        raise ExportError(
            f"EXPORT_DIR={self.settings.export_dir}: version {self.version} not exported: "
            f"alias '{CHAMPION}' moved {MAX_REGATES} times while it was gated; train again"
        )


def settle(candidate: Candidate, champion: evaluate.Champion | None) -> Path | None:
    """Gate `candidate` against `champion` (the first look), then against the champion of each
    later moment; export and alias it if it passes. The export's path, or None."""
    candidate.record(candidate.judge(champion))
    if candidate.gate.outcome is evaluate.Outcome.BEATEN:
        candidate.regate()  # by the champion of this moment? Moving nothing needs no lock.
    return _promote(candidate) if candidate.gate.passed else None


def _promote(candidate: Candidate) -> Path | None:
    """Under EXPORT_DIR's lock: export, then move the alias, each right after a look at the
    champion of that moment. The path of the export, or None if a new champion beat it."""
    settings, version = candidate.settings, candidate.version
    with ExitStack() as stack:
        with _export_errors(candidate):
            stack.enter_context(exports.locked(settings.export_dir, settings.export_lock_seconds))
        if not candidate.regate().passed:
            return None
        download = partial(_download, settings.model_name, version, candidate.run_id)
        with _export_errors(candidate):
            folder = exports.stage(settings.export_dir, version, download)
        if not candidate.regate().passed:  # the download took a while
            shutil.rmtree(folder, ignore_errors=True)
            return None
        with _export_errors(candidate):
            exports.publish(folder, settings.export_dir)
        # Export first: the alias never points at a version that serving does not have.
        MlflowClient().set_registered_model_alias(settings.model_name, CHAMPION, version)
    return settings.export_dir


@contextmanager
def _export_errors(candidate: Candidate) -> Iterator[None]:
    """Raise what goes wrong writing EXPORT_DIR as one ExportError line."""
    try:
        yield
    except (OSError, MlflowException) as error:  # LockTimeoutError is an OSError
        raise ExportError(
            f"EXPORT_DIR={candidate.settings.export_dir}: version {candidate.version} could not "
            f"be exported ({one_line(error)}); alias '{CHAMPION}' not moved"
        ) from None


def champion_version(model_name: str) -> str | None:
    """The version the `champion` alias points at now, or None."""
    try:
        aliases = MlflowClient().get_registered_model(model_name).aliases
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":  # no such model yet
            return None
        raise
    version = aliases.get(CHAMPION)
    return None if version is None else str(version)


def score_champion(
    settings: TrainSettings, parts: data.Split, signature: ModelSignature
) -> evaluate.Champion | None:
    """The current champion's GATE_METRIC on this run's holdout, or None if there is none;
    its `value` is None when its features or output differ (the floor alone decides)."""
    version = champion_version(settings.model_name)
    if version is None:
        return None
    with tempfile.TemporaryDirectory(prefix="champion-") as folder:
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{settings.model_name}/{version}", dst_path=folder
        )
        mlmodel = Model.load(str(Path(folder) / "MLmodel"))
        if _schema(mlmodel.signature) != _schema(signature):
            return evaluate.Champion(version, None)
        flavor = mlmodel.flavors["sklearn"]
        estimator = skops.io.load(
            Path(folder) / flavor["pickled_model"],
            trusted=flavor.get("skops_trusted_types") or None,
        )
    try:
        scores = evaluate.metrics(evaluate.Holdout.of(estimator, parts.x_test, parts.y_test))
    except ValueError:  # e.g. the holdout has classes the champion never saw
        return evaluate.Champion(version, None)
    return evaluate.Champion(version, scores[settings.gate_metric])


def _schema(signature: ModelSignature | None) -> Any:
    """What must match for two models to be scored on the same rows: input names and types,
    and the output's type."""
    if signature is None:
        return None
    inputs = signature.inputs.to_dict()
    outputs = signature.outputs.to_dict() if signature.outputs is not None else []
    return (
        [(column.get("name"), column.get("type")) for column in inputs],
        [column.get("type") for column in outputs],
    )


CHAMPION_TAGS = ("champion_version", "champion_value")  # on a version gated against one


def _gate_tags(gate: evaluate.GateResult) -> dict[str, str]:
    tags = {
        "quality_gate": gate.outcome.value,
        "quality_gate_rule": gate.rule,
        "quality_gate_value": f"{gate.value:.6f}",
        "gate_tolerance": str(gate.tolerance),
    }
    if gate.champion is not None:
        tags["champion_version"] = gate.champion.version
        tags["champion_value"] = (
            "schema differs" if gate.champion.value is None else f"{gate.champion.value:.6f}"
        )
    return tags


def export(
    model_name: str,
    version: str,
    run_id: str,
    export_dir: Path,
    lock_seconds: float = TrainSettings.model_fields["export_lock_seconds"].default,
    check: Callable[[Path], object] = lambda folder: None,
) -> Path:
    """Copy registered `version` to `export_dir` (a symlink swapped in one rename, see exports)
    as a self-contained MLflow model folder; `check` may amend it before it is published."""

    def fill(folder: Path) -> None:
        _download(model_name, version, run_id, folder)
        check(folder)

    with exports.locked(export_dir, lock_seconds):
        exports.publish(exports.stage(export_dir, version, fill), export_dir)
    return exports.Layout.of(export_dir).link


@dataclass(frozen=True)
class Exported:
    """The registered version `export_registered` exported, and where."""

    model_name: str
    version: str
    run_id: str
    path: Path
    onnx_note: str | None  # why its ONNX twin is not served (scikit-learn is), or None


def export_registered(uri: str, export_dir: Path, lock_seconds: float) -> Exported:
    """Export the version `uri` names to `export_dir` as training does, its ONNX twin verified
    again here. Raises MlflowException for no such version, OSError if writing fails."""
    found = REGISTERED_URI.fullmatch(uri)
    if found is None:
        raise ValueError(f"MODEL_URI={uri!r} names no registered version")
    client, name = MlflowClient(), found["name"]
    registered = (
        client.get_model_version_by_alias(name, found["alias"])
        if found["alias"]
        else client.get_model_version(name, found["version"])
    )
    version, run_id = str(registered.version), str(registered.run_id)
    notes: list[str | None] = []

    def check(folder: Path) -> None:
        notes.append(onnx_export.reverify(folder))

    path = export(name, version, run_id, export_dir, lock_seconds, check=check)
    return Exported(name, version, run_id, path, notes[-1] if notes else None)


def _download(model_name: str, version: str, run_id: str, folder: Path) -> None:
    """Registered `version` into `folder`, its MLmodel metadata naming where it came from."""
    mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{model_name}/{version}", dst_path=str(folder)
    )
    mlmodel = Model.load(str(folder / "MLmodel"))
    mlmodel.metadata = {
        **(mlmodel.metadata or {}),  # keeps what training recorded (nullable features)
        "model_name": model_name,
        "model_version": version,
        "run_id": run_id,
        # The registry the version number belongs to, without credentials (an image label).
        REGISTRY_URI_METADATA: public_uri(mlflow.get_registry_uri()),
    }
    mlmodel.save(str(folder / "MLmodel"))

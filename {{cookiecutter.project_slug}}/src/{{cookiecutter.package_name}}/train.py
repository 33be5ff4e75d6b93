"""Train the pipeline, log the run to MLflow, register a version, apply the quality gate, export.

The registered version always exists (so a failed candidate stays inspectable); only a version
that passes the gate is exported to EXPORT_DIR for serving and then gets the `champion` alias.
The gate compares the new version with the current champion too, both scored on this run's
holdout (see evaluate.GateResult). Each failure is raised as one of the errors `cli.TrainExit`
tells apart.

Trainings may run at once. Fitting and logging run side by side; exporting and moving the alias
happen under EXPORT_DIR's lock (exports.locked), and right before each, the alias is read again:
if another training moved it meanwhile, the version is gated again against the new champion.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import pandas as pd
import skops.io
from mlflow.data.pandas_dataset import from_pandas
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature, infer_signature
from mlflow.tracking import MlflowClient
from sklearn.pipeline import Pipeline
from sklearn.utils import assert_all_finite

from . import data, evaluate, exports, onnx_export, plots, tracking
from .config import TrainSettings
from .pipeline import HYPERPARAMETERS_BY_TASK, build_pipeline
from .serve.nullable import NULLABLE_FEATURES, nullable_features

CHAMPION = "champion"
MODEL_ARTIFACT = "model"
# What loading the model needs, pinned as installed; MLflow adds itself. Listing them skips
# MLflow's requirement inference, which imports the model in a subprocess (~15 s).
MODEL_REQUIREMENTS = ("numpy", "pandas", "scikit-learn", "scipy", "skops")
# Gating again when the alias moved, at most this often in a row: trainings finish in seconds,
# so an alias that keeps moving is a loop somewhere, not a queue.
MAX_REGATES = 5


class ExportError(RuntimeError):
    """The passing version could not be exported to EXPORT_DIR; the alias was not moved."""


@dataclass(frozen=True)
class TrainResult:
    """What one training run produced, for the CLI summary and for tests."""

    run_id: str
    metrics: dict[str, float]
    model_name: str
    model_version: str
    gate: evaluate.GateResult
    export_dir: Path | None  # None when the gate failed: the previous export stays
    seconds: float


def run(settings: TrainSettings, dataset: data.Dataset | None = None) -> TrainResult:
    """Train and evaluate on a seeded stratified split; log, register, gate and export.

    `dataset` is what settings name, when the caller has loaded it already.
    """
    started = time.perf_counter()
    if dataset is None:
        dataset = data.load_dataset(settings.data_path, settings.target_column, settings.task)
    parts = data.split(dataset, settings.test_size, settings.random_seed)
    tracking.connect(settings.mlflow_tracking_uri)  # before fitting: a dead server fails fast
    model = build_pipeline(settings.model_type, parts.x_train, settings.random_seed, settings.task)
    try:
        model.fit(parts.x_train, parts.y_train)
        _check_preprocessed(model, parts.x_train)
    except ValueError as error:  # what scikit-learn raises on values it cannot fit
        raise data.DataError(
            f"cannot fit {settings.model_type} on {dataset.source}: {tracking.one_line(error)}"
        ) from None
    holdout = evaluate.Holdout.of(model, parts.x_test, parts.y_test)  # predicted once
    scores = evaluate.metrics(holdout)
    try:
        return _record(settings, dataset, parts, model, holdout, scores, started)
    except (MlflowException, OSError) as error:  # OSError: requests' connection errors too
        where = tracking.describe(settings.mlflow_tracking_uri)
        raise tracking.TrackingError(f"{where} failed: {tracking.one_line(error)}") from None


def _check_preprocessed(model: Pipeline, x_train: pd.DataFrame) -> None:
    """Raise ValueError if preprocessing turned finite training values into NaN or infinity.

    Values near the float limit overflow the scaler's mean and variance. A linear model then
    refuses to fit, but trees accept NaN and would train with that column silently gone.
    """
    try:
        assert_all_finite(model[:-1].transform(x_train))  # dense or sparse
    except ValueError:
        raise ValueError(
            "values too large to scale: preprocessing made some NaN or infinite"
        ) from None


def _record(
    settings: TrainSettings,
    dataset: data.Dataset,
    parts: data.Split,
    model: Pipeline,
    holdout: evaluate.Holdout,
    scores: dict[str, float],
    started: float,
) -> TrainResult:
    """Log the run, register and tag the version; export and alias it if it passes the gate."""
    example = parts.x_train.head(5)
    signature = infer_signature(example, model.predict(example))
    # The first look at the champion, outside the lock: usually also the last.
    champion = score_champion(settings, parts, signature)
    experiment = mlflow.set_experiment(settings.mlflow_experiment_name)
    with mlflow.start_run(experiment_id=experiment.experiment_id) as active:
        mlflow.log_params(_params(settings, dataset))
        mlflow.log_metrics(scores)
        for path, figure in plots.for_holdout(holdout).items():
            mlflow.log_figure(figure, path)
        _log_inputs(dataset, parts)
        info = _log_model(model, parts, settings.model_name, signature)
        onnx_export.attach(model, parts.x_test, info)  # before export: the version carries it
    candidate = Candidate(
        settings, parts, signature, scores, str(info.registered_model_version), active.info.run_id
    )
    candidate.record(candidate.judge(champion))
    if candidate.gate.outcome is evaluate.Outcome.BEATEN:
        candidate.regate()  # by the champion of this moment? Moving nothing needs no lock.
    exported = _promote(candidate) if candidate.gate.passed else None
    return TrainResult(
        run_id=candidate.run_id,
        metrics=scores,
        model_name=settings.model_name,
        model_version=candidate.version,
        gate=candidate.gate,
        export_dir=exported,
        seconds=time.perf_counter() - started,
    )


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
            f"be exported ({tracking.one_line(error)}); alias '{CHAMPION}' not moved"
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
    """The current champion's GATE_METRIC on this run's holdout, or None if there is none.

    A champion whose features or output differ from the new model's cannot be scored on
    these rows: its `value` is None, and the floor alone decides.
    """
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
) -> Path:
    """Copy registered `version` to `export_dir` as a self-contained MLflow model folder.

    The MLmodel `metadata` names the version, so the server can report what it serves.
    `export_dir` becomes a symlink swapped in one rename (see exports): a reader sees the old
    export or the new one, never none or half of one.
    """
    with exports.locked(export_dir, lock_seconds):
        download = partial(_download, model_name, version, run_id)
        exports.publish(exports.stage(export_dir, version, download), export_dir)
    return exports.Layout.of(export_dir).link


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
    }
    mlmodel.save(str(folder / "MLmodel"))


def trusted_types(model: Pipeline) -> list[str]:
    """The types skops must be told to trust to load `model` (tree internals, for instance)."""
    return list(skops.io.get_untrusted_types(data=skops.io.dumps(model)))


def _params(settings: TrainSettings, dataset: data.Dataset) -> dict[str, Any]:
    return {
        "task": settings.task.value,
        "model_type": settings.model_type.value,
        **HYPERPARAMETERS_BY_TASK[settings.task][settings.model_type],
        "test_size": settings.test_size,
        "random_seed": settings.random_seed,
        "data_source": dataset.source,
        "target_column": dataset.target_column,
        "rows": len(dataset.frame),
        "features": dataset.frame.shape[1] - 1,
    }


def _log_inputs(dataset: data.Dataset, parts: data.Split) -> None:
    # A file's absolute path is recorded as the dataset's source; the bundled data has none
    # (MLflow then records the code that loaded it).
    bundled = dataset.bundled
    source = {} if bundled else {"source": str(Path(dataset.source).resolve())}
    with warnings.catch_warnings():
        # Features are doubles; an integer column is the label, which is never missing.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        # MLflow registers two local-file source types; either reads the path the same way.
        warnings.filterwarnings("ignore", message="The specified dataset source can be interp")
        for context, x, y in (
            ("training", parts.x_train, parts.y_train),
            ("testing", parts.x_test, parts.y_test),
        ):
            logged = from_pandas(
                x.assign(**{dataset.target_column: y}),
                targets=dataset.target_column,
                name=dataset.name,
                **source,
            )
            mlflow.log_input(logged, context=context)


def _log_model(
    model: Pipeline, parts: data.Split, model_name: str, signature: ModelSignature
) -> Any:
    return mlflow.sklearn.log_model(
        model,
        name=MODEL_ARTIFACT,
        signature=signature,
        input_example=parts.x_train.head(5),
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        skops_trusted_types=trusted_types(model),
        pip_requirements=[f"{name}=={installed_version(name)}" for name in MODEL_REQUIREMENTS],
        registered_model_name=model_name,
        # From all the training data: the 5-row example alone would let the seed decide.
        metadata={NULLABLE_FEATURES: nullable_features(model, parts.x_train)},
    )

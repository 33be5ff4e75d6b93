"""Load an exported model: read its MLmodel file, then the estimator with skops.

A model folder is read directly (the MLmodel YAML and `skops.io.load` with the trusted types
MLflow recorded there), so serving a local folder never imports MLflow. If training added an
ONNX model that still agrees with scikit-learn on its reference rows, onnxruntime serves it
and scikit-learn is not even imported (see onnx_runtime.py). Only `models:/...`
and other remote URIs import MLflow, to download the folder into /tmp first.

Importing this module costs only the standard library and PyYAML: `read_model_metadata` is
what image labels and other tools use to name the model in a folder.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ..config import REGISTERED_URI
from .errors import one_line
from .features import NUMERIC_TYPES, SUPPORTED_TYPES, Feature
from .nullable import NULLABLE_FEATURES

if TYPE_CHECKING:
    from .model import ServedModel

log = logging.getLogger(__name__)

# MLmodel metadata key training writes when it added a verified ONNX model:
# {"model": <file>, "reference": <file>} in the model folder (see onnx_runtime.py).
ONNX_METADATA = "onnx"
UNKNOWN = "unknown"  # what the server reports for a name, version or run id nobody recorded


class ModelLoadError(RuntimeError):
    """The model at MODEL_URI cannot be served; the message says why and what would work."""


@dataclass(frozen=True, slots=True)
class ModelMetadata:
    """Which model a folder holds: its registered name, version and training run."""

    name: str
    version: str
    run_id: str


def read_model_metadata(folder: str | Path) -> ModelMetadata:
    """The name, version and run id the exported model in `folder` records (else "unknown").

    Raises ModelLoadError if `folder` holds no MLmodel file.
    """
    return _identity(_recorded(_read_mlmodel(Path(folder), str(folder)), {}))


def load_model(uri: str) -> ServedModel:
    """Load the model at `uri`: an exported MLflow model folder or `models:/<name>@<alias>`.

    Raises ModelLoadError, one line naming MODEL_URI and the file, whatever is wrong with it.
    """
    folder, registered = _local_folder(uri)
    try:
        return _load_folder(folder, uri, registered)
    except ModelLoadError:
        raise
    except Exception as error:  # an MLmodel of the wrong shape: a mapping where a list is due
        raise ModelLoadError(
            f"MODEL_URI={uri!r}: {folder / 'MLmodel'} is not a usable MLmodel "
            f"({type(error).__name__}: {one_line(error)})"
        ) from None


def _load_folder(folder: Path, uri: str, registered: dict[str, str]) -> ServedModel:
    mlmodel = _read_mlmodel(folder, uri)
    flavor = (mlmodel.get("flavors") or {}).get("sklearn")
    if not flavor:
        raise ModelLoadError(f"MODEL_URI={uri!r}: the MLmodel has no sklearn flavor")
    if flavor.get("serialization_format") != "skops":
        raise ModelLoadError(
            f"MODEL_URI={uri!r}: serialization_format is "
            f"{flavor.get('serialization_format')!r}; only 'skops' models are served "
            "(pickle can run arbitrary code when loaded)"
        )
    features = _features(mlmodel, uri)
    recorded = _recorded(mlmodel, registered)
    if NULLABLE_FEATURES in recorded:
        # Decided from the training data, not the example: every feature is sent, null if
        # training allows it.
        nullable = set(recorded[NULLABLE_FEATURES])
        features = [Feature(f.name, f.type, True, f.name in nullable) for f in features]
    from ..reference_bins import DRIFT_REFERENCE  # numpy: kept out of read_model_metadata's import
    from .model import ServedModel
    from .onnx_runtime import load_checked

    def load_estimator() -> Any:
        # skops imports most of scikit-learn: kept out of module import for a fast start.
        import skops.io

        # MODEL_URI must point at a model you trust: like MLflow, we trust the types it records.
        path = folder / flavor["pickled_model"]
        try:
            return skops.io.load(path, trusted=flavor.get("skops_trusted_types") or None)
        except ImportError:
            raise
        except Exception as error:  # truncated (BadZipFile), missing, or not a skops file
            raise ModelLoadError(
                f"MODEL_URI={uri!r}: {path} cannot be loaded "
                f"({type(error).__name__}: {one_line(error)})"
            ) from None

    onnx, note = None, None
    if ONNX_METADATA in recorded and all(f.type in NUMERIC_TYPES for f in features):
        onnx, note = load_checked(folder, recorded[ONNX_METADATA])
    estimator = None
    if onnx is None:
        try:
            estimator = load_estimator()
        except ImportError:
            why = f"{note}, and " if note else ""
            raise ModelLoadError(
                f"MODEL_URI={uri!r}: {why}scikit-learn is not installed in this image "
                "(build it with the scikit-learn runtime)"
            ) from None
        if note:
            log.warning("serving with scikit-learn, not onnxruntime: %s", note)
    identity = _identity(recorded)
    return ServedModel(
        estimator,
        features,
        name=identity.name,
        version=identity.version,
        run_id=identity.run_id,
        example=_example(folder, mlmodel),
        source=uri,
        onnx=onnx,
        runtime_note=note,
        drift_reference=recorded.get(DRIFT_REFERENCE),
        load_estimator=load_estimator,
    )


def _read_mlmodel(folder: Path, uri: str) -> dict[str, Any]:
    path = folder / "MLmodel"
    if not path.is_file():
        raise ModelLoadError(
            f"MODEL_URI={uri!r}: no MLmodel file in {folder}; train and export a model first "
            "(`nox -s train` writes build/model) or point MODEL_URI at an exported model folder"
        )
    try:
        mlmodel = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as error:  # unreadable, not UTF-8, not YAML
        raise ModelLoadError(
            f"MODEL_URI={uri!r}: {path} cannot be read ({type(error).__name__}: {one_line(error)})"
        ) from None
    if not isinstance(mlmodel, dict):
        raise ModelLoadError(
            f"MODEL_URI={uri!r}: {path} is {'empty' if mlmodel is None else 'not a YAML mapping'}"
            "; export the model again (`nox -s train`)"
        )
    return mlmodel


def _recorded(mlmodel: dict[str, Any], registered: dict[str, str]) -> dict[str, Any]:
    # An exported folder names its version in `metadata`; a registry download asks the registry.
    return {**registered, **(mlmodel.get("metadata") or {})}


def _identity(recorded: dict[str, Any]) -> ModelMetadata:
    return ModelMetadata(
        name=str(recorded.get("model_name", UNKNOWN)),
        version=str(recorded.get("model_version", UNKNOWN)),
        run_id=str(recorded.get("run_id", UNKNOWN)),
    )


def _local_folder(uri: str) -> tuple[Path, dict[str, str]]:
    """The model folder for `uri` (downloaded into /tmp if remote) and what the registry says."""
    # A local folder is resolved once: training swaps a symlinked export in one rename, and a
    # load that follows the link at each file could mix two versions.
    if uri.startswith("file://"):
        return Path(uri.removeprefix("file://")).resolve(), {}
    if "://" not in uri and not uri.startswith("models:/"):
        return Path(uri).resolve(), {}
    try:
        import mlflow.artifacts  # only for registry/remote URIs; a folder never needs MLflow
        from mlflow.tracking import MlflowClient
    except ImportError:  # pragma: no cover - tests install MLflow; the serving image does not
        raise ModelLoadError(
            f"MODEL_URI={uri!r} needs MLflow's client: install the `registry` extra "
            "(`uv sync --extra serve --extra registry`), or serve an exported model folder"
        ) from None
    target = tempfile.mkdtemp(prefix="model-", dir=tempfile.gettempdir())
    try:
        folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=target))
        registered = {}
        if found := REGISTERED_URI.fullmatch(uri):  # the one reading of models:/ (config.py)
            name, client = found["name"], MlflowClient()
            if found["alias"]:
                version = client.get_model_version_by_alias(name, found["alias"])
            else:
                version = client.get_model_version(name, found["version"])
            registered = {
                "model_name": name,
                "model_version": str(version.version),
                "run_id": str(version.run_id),
            }
    except Exception as error:
        raise ModelLoadError(
            f"MODEL_URI={uri!r}: could not download the model ({one_line(error)}); "
            "for models:/ URIs set MLFLOW_TRACKING_URI to the registry that holds it"
        ) from None
    return folder, registered


def _features(mlmodel: dict[str, Any], uri: str) -> list[Feature]:
    signature = mlmodel.get("signature") or {}
    try:
        columns = json.loads(signature.get("inputs") or "[]")
    except json.JSONDecodeError:
        columns = []
    features = []
    for column in columns:
        if "name" not in column or column.get("type") not in SUPPORTED_TYPES:
            raise ModelLoadError(
                f"MODEL_URI={uri!r}: input {column} is not a named column of type "
                f"{' / '.join(sorted(SUPPORTED_TYPES))}"
            )
        features.append(Feature(column["name"], column["type"], column.get("required", True)))
    if not features:
        raise ModelLoadError(
            f"MODEL_URI={uri!r}: the MLmodel has no input signature with named columns; "
            "log the model with signature=infer_signature(X, y)"
        )
    return features


def _example(folder: Path, mlmodel: dict[str, Any]) -> dict[str, Any] | None:
    info = mlmodel.get("saved_input_example_info") or {}
    path = folder / info.get("artifact_path", "input_example.json")
    try:
        example = json.loads(path.read_text())
        row = dict(zip(example["columns"], example["data"][0], strict=True))
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None  # an example is nice to have, never required
    # MLflow writes a missing value as NaN, which JSON has no word for: it is null in a request.
    return {name: None if _not_finite(value) else value for name, value in row.items()}


def _not_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)

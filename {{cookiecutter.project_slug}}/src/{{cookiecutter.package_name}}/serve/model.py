"""Load the exported model once and predict on validated rows, without MLflow's pyfunc layer.

A model folder is read directly (the MLmodel YAML and `skops.io.load` with the trusted types
MLflow recorded there), so serving a local folder never imports MLflow. Only `models:/...`
and other remote URIs import MLflow, to download the folder into /tmp first.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from .nullable import NULLABLE_FEATURES

log = logging.getLogger(__name__)

# MLflow column types and the Python values a JSON request may carry for each.
NUMERIC_TYPES = frozenset({"double", "float", "long", "integer"})
SUPPORTED_TYPES = NUMERIC_TYPES | {"boolean", "string"}


class ModelLoadError(RuntimeError):
    """The model at MODEL_URI cannot be served; the message says why and what would work."""


class NonFinitePredictionError(ValueError):
    """The model computed NaN or an infinity for some rows (finite inputs of extreme size)."""

    def __init__(self, rows: list[int]) -> None:
        super().__init__(f"rows {rows} gave a non-finite prediction")
        self.rows = rows


@dataclass(frozen=True, slots=True)
class Feature:
    """One input column of the model signature."""

    name: str
    type: str
    required: bool = True  # present in every row (MLflow's meaning: else it may be left out)
    nullable: bool = False  # may be null; always so when not required

    def __post_init__(self) -> None:
        if not self.required:  # a column that may be left out is null when it is
            object.__setattr__(self, "nullable", True)


@dataclass(frozen=True, slots=True)
class Prediction:
    """Predicted labels and, for classifiers, one probability per class and row."""

    predictions: list[Any]
    probabilities: list[list[float]] | None


class ServedModel:
    """A loaded scikit-learn model plus what the MLmodel file says about it."""

    def __init__(
        self,
        estimator: Any,
        features: Sequence[Feature],
        *,
        name: str,
        version: str,
        run_id: str,
        example: dict[str, Any] | None,
        source: str,
    ) -> None:
        self.estimator = estimator
        self.features = tuple(features)
        self.names = [f.name for f in self.features]
        self.name, self.version, self.run_id = name, version, run_id
        self.example = example
        self.source = source
        self.numeric = all(f.type in NUMERIC_TYPES for f in self.features)
        self.has_proba = hasattr(estimator, "predict_proba")
        self.classes: list[Any] | None = (
            np.asarray(estimator.classes_).tolist() if hasattr(estimator, "classes_") else None
        )
        self._fast = _FastPipeline.build(estimator, self.names) if self.numeric else None
        if self._fast is not None and not self._fast_agrees():
            log.warning("fast predict path disagrees with the pipeline; using the pipeline")
            self._fast = None

    @property
    def fast(self) -> bool:
        """Whether predictions skip pandas and scikit-learn's ColumnTransformer dispatch."""
        return self._fast is not None

    def predict(self, rows: list[list[Any]]) -> Prediction:
        """Predict validated rows (values in signature order).

        Raises NonFinitePredictionError rather than return a NaN or infinite result, or a label
        chosen from one.
        """
        with np.errstate(all="ignore"):  # overflow is caught below, not warned about
            return self._predict(rows)

    def _predict(self, rows: list[list[Any]]) -> Prediction:
        if self._fast is not None:
            proba = self._fast.predict_proba(np.asarray(rows, dtype=np.float64))
            return self._from_proba(proba)
        frame = self.frame(rows)
        if self.has_proba:
            return self._from_proba(self.estimator.predict_proba(frame))
        labels = np.asarray(self.estimator.predict(frame))
        if labels.dtype.kind in "fc":
            _check_finite(labels.reshape(len(labels), -1))
        return Prediction(labels.tolist(), None)

    def frame(self, rows: list[list[Any]]) -> pd.DataFrame:
        """Rows as the DataFrame the pipeline was trained on (column names and dtypes)."""
        return to_frame(self.features, rows)

    def _from_proba(self, proba: np.ndarray[Any, Any]) -> Prediction:
        _check_finite(proba)
        # argmax over predict_proba is what predict() does for these classifiers; one pass not two.
        labels = np.asarray(self.estimator.classes_)[np.argmax(proba, axis=1)]
        return Prediction(labels.tolist(), proba.tolist())

    def _fast_agrees(self) -> bool:
        assert self._fast is not None
        rows = self.example_rows()
        if not rows:
            return False
        try:
            fast = self._fast.predict_proba(np.asarray(rows, dtype=np.float64))
        except Exception:  # any failure means the fast path does not fit this pipeline
            log.exception("fast predict path failed on the input example")
            return False
        reference = self.estimator.predict_proba(self.frame(rows))
        return bool(np.allclose(fast, reference, rtol=1e-9, atol=1e-12))

    def example_rows(self) -> list[list[Any]]:
        """The input example as rows, plus perturbed copies so the check sees varied values."""
        if self.example is None:
            return []
        row = [self.example[name] for name in self.names]
        rows = [row]
        if self.numeric:
            base = np.asarray(row, dtype=np.float64)
            for scale in (0.5, 1.5, -1.0):
                rows.append((base * scale).tolist())
        return rows


class _FastPipeline:
    """Pipeline(ColumnTransformer(...), ..., classifier) applied to a float array.

    Each column group goes straight to its fitted transformer as an array slice, which skips
    pandas indexing and is several times faster for one row. Built only for all-numeric
    signatures, and used only when it matches the real pipeline on the input example.
    """

    def __init__(self, groups: list[tuple[Any, list[int]]], steps: list[Any]) -> None:
        self.groups = groups
        self.steps = steps

    @classmethod
    def build(cls, estimator: Any, names: list[str]) -> _FastPipeline | None:
        from sklearn.compose import ColumnTransformer
        from sklearn.pipeline import Pipeline

        if not isinstance(estimator, Pipeline) or len(estimator.steps) < 2:
            return None
        first = estimator.steps[0][1]
        final = estimator.steps[-1][1]
        if not isinstance(first, ColumnTransformer) or not hasattr(final, "predict_proba"):
            return None
        if getattr(first, "sparse_output_", False):
            return None
        position = {name: i for i, name in enumerate(names)}
        fitted_names = list(getattr(first, "feature_names_in_", names))
        groups: list[tuple[Any, list[int]]] = []
        for _, transformer, columns in first.transformers_:
            if isinstance(transformer, str) and transformer == "drop":
                continue
            indices = _indices(columns, fitted_names, position)
            if indices is None:
                return None
            if indices:
                groups.append((_unnamed(transformer), indices))
        return cls(groups, [_unnamed(step) for _, step in estimator.steps[1:]])

    def predict_proba(self, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        parts = [
            x[:, idx] if isinstance(t, str) else np.asarray(t.transform(x[:, idx]))
            for t, idx in self.groups
        ]
        out = np.hstack(parts) if len(parts) > 1 else parts[0]
        for step in self.steps[:-1]:
            out = step.transform(out)
        result: np.ndarray[Any, Any] = self.steps[-1].predict_proba(out)
        return result


def _check_finite(values: np.ndarray[Any, Any]) -> None:
    """Raise NonFinitePredictionError naming the rows of `values` (2-D) that are not all finite."""
    finite = np.isfinite(values).all(axis=1)
    if not finite.all():
        raise NonFinitePredictionError(np.flatnonzero(~finite).tolist())


def _unnamed(estimator: Any) -> Any:
    """A copy of `estimator` that takes arrays without warning that they lack column names.

    The names were checked against the signature already; the real pipeline is left as is.
    """
    if isinstance(estimator, str):  # "passthrough"
        return estimator
    unnamed = copy.deepcopy(estimator)
    for part in [unnamed, *(step for _, step in getattr(unnamed, "steps", []))]:
        if "feature_names_in_" in vars(part):  # a Pipeline only forwards its first step's
            del part.feature_names_in_
    return unnamed


def _indices(columns: Any, fitted_names: list[str], position: dict[str, int]) -> list[int] | None:
    """Signature positions of a ColumnTransformer column selection, None if not a plain list."""
    if isinstance(columns, str | int):
        columns = [columns]
    if not isinstance(columns, list | tuple | np.ndarray):
        return None
    indices = []
    for column in columns:
        name = fitted_names[column] if isinstance(column, int | np.integer) else column
        if name not in position:
            return None
        indices.append(position[name])
    return indices


def to_frame(features: Sequence[Feature], rows: list[list[Any]]) -> pd.DataFrame:
    """Validated rows (values in signature order) as a DataFrame typed like the signature."""
    names = [f.name for f in features]
    if all(f.type in NUMERIC_TYPES for f in features):  # a null becomes NaN in a float array
        return pd.DataFrame(np.asarray(rows, dtype=np.float64), columns=names)
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    return pd.DataFrame(
        {f.name: _column(f, values) for f, values in zip(features, columns, strict=True)}
    )


def _column(feature: Feature, values: Sequence[Any]) -> Any:
    if feature.type in NUMERIC_TYPES:
        has_missing = any(v is None for v in values)
        dtype = np.float64 if feature.type in {"double", "float"} or has_missing else np.int64
        return np.asarray([np.nan if v is None else v for v in values], dtype=dtype)
    return np.asarray(values, dtype=object)


def load_model(uri: str) -> ServedModel:
    """Load the model at `uri`: an exported MLflow model folder or `models:/<name>@<alias>`."""
    folder, registered = _local_folder(uri)
    mlmodel_path = folder / "MLmodel"
    if not mlmodel_path.is_file():
        raise ModelLoadError(
            f"MODEL_URI={uri!r}: no MLmodel file in {folder}; train and export a model first "
            "(`nox -s train` writes build/model) or point MODEL_URI at an exported model folder"
        )
    mlmodel = yaml.safe_load(mlmodel_path.read_text())
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
    # An exported folder names its version in `metadata`; a registry download asks the registry.
    metadata = {**registered, **(mlmodel.get("metadata") or {})}
    if NULLABLE_FEATURES in metadata:
        # Decided from the training data, not the example: every feature is sent, null if
        # training allows it.
        nullable = set(metadata[NULLABLE_FEATURES])
        features = [Feature(f.name, f.type, True, f.name in nullable) for f in features]
    import skops.io  # imports most of scikit-learn: kept out of module import for a fast start

    # MODEL_URI must point at a model you trust: like MLflow, we trust the types it records.
    estimator = skops.io.load(
        folder / flavor["pickled_model"], trusted=flavor.get("skops_trusted_types") or None
    )
    return ServedModel(
        estimator,
        features,
        name=str(metadata.get("model_name", "unknown")),
        version=str(metadata.get("model_version", "unknown")),
        run_id=str(metadata.get("run_id", "unknown")),
        example=_example(folder, mlmodel),
        source=uri,
    )


def _local_folder(uri: str) -> tuple[Path, dict[str, str]]:
    """The model folder for `uri` (downloaded into /tmp if remote) and what the registry says."""
    if uri.startswith("file://"):
        return Path(uri.removeprefix("file://")), {}
    if "://" not in uri and not uri.startswith("models:/"):
        return Path(uri), {}
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
        if uri.startswith("models:/"):
            name, _, alias = uri.removeprefix("models:/").partition("@")
            if alias:
                version = MlflowClient().get_model_version_by_alias(name, alias)
            else:
                name, _, number = name.partition("/")
                version = MlflowClient().get_model_version(name, number)
            registered = {
                "model_name": name,
                "model_version": str(version.version),
                "run_id": str(version.run_id),
            }
    except Exception as error:
        raise ModelLoadError(
            f"MODEL_URI={uri!r}: could not download the model ({error}); for models:/ URIs "
            "set MLFLOW_TRACKING_URI to the registry that holds it"
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

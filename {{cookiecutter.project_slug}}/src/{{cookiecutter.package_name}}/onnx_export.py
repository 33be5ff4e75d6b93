"""Convert the fitted pipeline to ONNX, check it on the holdout, log it beside the sklearn model.

onnxruntime predicts a row ~10-1000x faster than the scikit-learn pipeline and needs neither
pandas nor SciPy, so the serving image shrinks. It is used only where it gives the same
answers: `attach` converts, compares on the holdout (serve/onnx_runtime.py holds the rule),
and only then adds `model.onnx` and its reference rows to the logged scikit-learn model
(so the registered version and its export carry them) and logs an `onnx` flavor model too.
A pipeline that does not convert or does not agree is served by scikit-learn, as before.
"""

from __future__ import annotations

import copy
import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any
from unittest import mock

import mlflow
import mlflow.onnx
import numpy as np
import pandas as pd
import skops.io
from mlflow.models import Model
from mlflow.tracking import MlflowClient
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline

from .serve.errors import one_line
from .serve.loading import ONNX_METADATA
from .serve.onnx_runtime import (
    ONNX_FILE,
    REFERENCE_FILE,
    OnnxPredictor,
    Reference,
    disagreement,
)

log = logging.getLogger(__name__)

ONNX_ARTIFACT = "model-onnx"  # the onnx-flavor model in the run, next to "model"
REFERENCE_ROWS = 20  # holdout rows the server checks again at load
CONVERSION_TAG = "onnx_conversion"  # run tag: "verified", or why the model stays sklearn-only


class ConversionError(RuntimeError):
    """The pipeline cannot be served through ONNX; the message says why."""


def attach(pipeline: Pipeline, holdout: pd.DataFrame, logged: Any) -> str | None:
    """Convert, verify on `holdout` and add the ONNX model to `logged` (in the active run);
    return why not if the model stays scikit-learn only (the run's tag says so too)."""
    try:
        model, reference = convert(pipeline, holdout)
    except ConversionError as error:
        mlflow.set_tag(CONVERSION_TAG, f"not served through ONNX: {error}"[:500])
        log.warning("model stays on scikit-learn: %s", error)
        return str(error)
    # Pinned as installed: MLflow's requirement inference would load the model in a subprocess.
    requirements = [f"{name}=={installed_version(name)}" for name in ("onnx", "onnxruntime")]
    mlflow.onnx.log_model(model, name=ONNX_ARTIFACT, pip_requirements=requirements)
    client = MlflowClient()
    with tempfile.TemporaryDirectory() as folder:
        staged = Path(folder)
        # The MLmodel names the ONNX files: a folder without that entry is served by sklearn.
        mlmodel = Model.load(logged.model_uri)
        mlmodel.metadata = {
            **(mlmodel.metadata or {}),
            ONNX_METADATA: {"model": ONNX_FILE, "reference": REFERENCE_FILE},
        }
        mlmodel.save(str(staged / "MLmodel"))
        (staged / ONNX_FILE).write_bytes(model.SerializeToString())
        (staged / REFERENCE_FILE).write_text(reference.to_json())
        client.log_model_artifacts(logged.model_id, str(staged))
    mlflow.set_tag(CONVERSION_TAG, "verified")
    return None


def reverify(folder: Path) -> str | None:
    """Check the ONNX twin in a downloaded model `folder` against its scikit-learn model, as
    `convert` did at training: both predict the recorded reference rows here, in this
    environment, and must agree. If not, the MLmodel stops naming the twin (scikit-learn
    serves the model, as for a model that never converted) and the reason is returned.
    """
    mlmodel = Model.load(str(folder / "MLmodel"))
    metadata = dict(mlmodel.metadata or {})
    spec = metadata.pop(ONNX_METADATA, None)
    if not spec:
        return None  # no twin: scikit-learn serves it, as training decided
    reason = _twin_disagreement(folder, mlmodel, spec)
    if reason is not None:
        mlmodel.metadata = metadata
        mlmodel.save(str(folder / "MLmodel"))
    return reason


def _twin_disagreement(folder: Path, mlmodel: Model, spec: dict[str, str]) -> str | None:
    try:
        recorded = Reference.from_json((folder / spec["reference"]).read_text())
        flavor = mlmodel.flavors["sklearn"]
        pipeline = skops.io.load(
            folder / flavor["pickled_model"], trusted=flavor.get("skops_trusted_types") or None
        )
        names = [column.name for column in mlmodel.signature.inputs.inputs]
        rows = pd.DataFrame(np.asarray(recorded.inputs, dtype=np.float64), columns=names)
        fresh = _reference(pipeline, rows, recorded.classes is not None)
        predictor = OnnxPredictor((folder / spec["model"]).read_bytes(), fresh.classes)
    except Exception as error:  # unreadable files, a model skops or onnxruntime refuses
        return f"the ONNX twin cannot be checked ({one_line(error)})"
    reason = disagreement(predictor, fresh)
    return None if reason is None else f"on its reference rows, {reason}"


def convert(pipeline: Pipeline, holdout: pd.DataFrame) -> tuple[Any, Reference]:
    """The ONNX model of `pipeline` and its reference rows if it agrees on all of `holdout`,
    else ConversionError."""
    if not all(pd.api.types.is_numeric_dtype(dtype) for dtype in holdout.dtypes):
        raise ConversionError("only all-numeric inputs are converted")
    try:
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import DoubleTensorType
    except ImportError:
        raise ConversionError("skl2onnx is not installed (the `train` extra has it)") from None
    _register_nan_fill()
    final = pipeline.steps[-1][1]
    classifier = hasattr(final, "predict_proba")
    positional = _positional(pipeline, list(holdout.columns))
    # Keyed by class, not id(): skl2onnx then skips walking every tree to find the estimator.
    options = {type(final): {"zipmap": False}} if classifier else None
    try:
        with _integer_missing_flags():
            model = to_onnx(
                positional,
                initial_types=[("X", DoubleTensorType([None, holdout.shape[1]]))],
                options=options,
                target_opset={"": 18, "ai.onnx.ml": 3},
            )
    except Exception as error:  # skl2onnx raises many types for what it cannot convert
        raise ConversionError(f"skl2onnx cannot convert it ({one_line(error)})") from None
    reference = _reference(pipeline, holdout, classifier)
    try:
        predictor = OnnxPredictor(model.SerializeToString(), reference.classes)
    except Exception as error:
        raise ConversionError(f"onnxruntime cannot load it ({one_line(error)})") from None
    reason = disagreement(predictor, reference)
    if reason is not None:
        raise ConversionError(f"on the holdout, {reason}")
    return model, reference.head(REFERENCE_ROWS)


def _reference(pipeline: Pipeline, x: pd.DataFrame, classifier: bool) -> Reference:
    inputs = [[None if np.isnan(v) else float(v) for v in row] for row in x.to_numpy(np.float64)]
    predictions = np.asarray(pipeline.predict(x)).tolist()
    if not classifier:
        return Reference(inputs, predictions)
    return Reference(
        inputs,
        predictions,
        classes=np.asarray(pipeline.classes_).tolist(),
        probabilities=np.asarray(pipeline.predict_proba(x), dtype=np.float64).tolist(),
    )


def _positional(pipeline: Pipeline, names: list[str]) -> Pipeline:
    """A copy of `pipeline` that takes one float64 matrix, columns in `names` order.

    skl2onnx gives a named ColumnTransformer one input per column; positions make it one
    matrix. SimpleImputer becomes NanFill (onnxruntime's Imputer takes float32 only), and
    tree models get float32 input as scikit-learn's trees do, so thresholds compare alike.
    """
    from skl2onnx.sklapi import CastTransformer

    # Only the preprocessing is changed, so only it is deep-copied: copying 200 trees costs.
    positional = Pipeline(
        [
            (name, copy.deepcopy(step) if isinstance(step, ColumnTransformer) else copy.copy(step))
            for name, step in pipeline.steps
        ]
    )
    position = {name: i for i, name in enumerate(names)}
    for _, step in positional.steps:
        if isinstance(step, ColumnTransformer):
            step.transformers_ = [
                (name, _swap_imputers(transformer), [position[c] for c in columns])
                for name, transformer, columns in step.transformers_
                if len(columns) and not (isinstance(transformer, str) and transformer == "drop")
            ]
        if "feature_names_in_" in vars(step):
            del step.feature_names_in_
    final_name, final = positional.steps[-1]
    if hasattr(final, "tree_") or hasattr(final, "estimators_") or _is_hist(final):
        positional.steps[-1:] = [
            ("float32", CastTransformer(dtype=np.float32)),
            (final_name, final),
        ]
    return positional


def _swap_imputers(transformer: Any) -> Any:
    if isinstance(transformer, SimpleImputer):
        return NanFill(transformer.statistics_)
    if isinstance(transformer, Pipeline):
        transformer.steps = [(name, _swap_imputers(step)) for name, step in transformer.steps]
    return transformer


def _is_hist(estimator: Any) -> bool:
    return isinstance(estimator, HistGradientBoostingClassifier | HistGradientBoostingRegressor)


@contextmanager
def _integer_missing_flags() -> Iterator[None]:
    """skl2onnx 1.20 gives HistGradientBoosting's leaves `missing=False`, a bool that
    protobuf >= 6 refuses in an ints attribute ("Expected an int, got a boolean")."""
    from skl2onnx.common import tree_ensemble

    original = tree_ensemble.add_node

    def add_node(*args: Any, nodes_missing_value_tracks_true: Any = 0, **kwargs: Any) -> Any:
        flag = int(nodes_missing_value_tracks_true)
        return original(*args, nodes_missing_value_tracks_true=flag, **kwargs)

    with mock.patch.object(tree_ensemble, "add_node", add_node):
        yield


class NanFill(BaseEstimator, TransformerMixin):  # type: ignore[misc]
    """SimpleImputer's fitted transform (NaN -> a statistic per column), in float64 in ONNX."""

    def __init__(self, statistics: np.ndarray[Any, Any]) -> None:
        self.statistics = statistics

    def fit(self, x: Any, y: Any = None) -> NanFill:
        return self

    def transform(self, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return np.where(np.isnan(x), self.statistics, x)


def _register_nan_fill() -> None:
    from skl2onnx import update_registered_converter
    from skl2onnx.algebra.onnx_ops import OnnxIsNaN, OnnxWhere
    from skl2onnx.common.data_types import DoubleTensorType

    def shape(operator: Any) -> None:
        source = operator.inputs[0].type
        operator.outputs[0].type = source.__class__(source.shape)

    def converter(scope: Any, operator: Any, container: Any) -> None:
        x = operator.inputs[0]
        dtype = np.float64 if isinstance(x.type, DoubleTensorType) else np.float32
        opset = container.target_opset
        statistics = operator.raw_operator.statistics.astype(dtype)
        filled = OnnxWhere(
            OnnxIsNaN(x, op_version=opset),
            statistics,
            x,
            op_version=opset,
            output_names=operator.outputs[:1],
        )
        filled.add_to(scope, container)

    update_registered_converter(NanFill, "MlopsNanFill", shape, converter)

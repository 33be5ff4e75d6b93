"""ONNX conversion (onnx_export.py): each supported model type converts and agrees on a holdout."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import mlflow
import mlflow.onnx
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline

from {{ cookiecutter.package_name }}.config import (
    ModelType,
)
from {{ cookiecutter.package_name }}.onnx_export import (
    CONVERSION_TAG,
    ONNX_ARTIFACT,
    ConversionError,
    convert,
    reverify,
)
from {{ cookiecutter.package_name }}.pipeline import (
    build_pipeline,
)
from {{ cookiecutter.package_name }}.serve.loading import (
    ONNX_METADATA,
)
from {{ cookiecutter.package_name }}.serve.onnx_runtime import (
    ONNX_FILE,
    OnnxPredictor,
    disagreement,
)
from {{ cookiecutter.package_name }}.train import (
    TrainResult,
)


def test_the_onnx_model_is_logged_beside_the_sklearn_one(
    trained: TrainResult, tracking_uri: str
) -> None:
    run = MlflowClient(tracking_uri).get_run(trained.run_id)
    assert run.data.tags[CONVERSION_TAG] == "verified"
    mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.onnx.load_model(f"runs:/{trained.run_id}/{ONNX_ARTIFACT}")
    assert [i.name for i in model.graph.input] == ["X"]  # one float64 matrix, signature order


def with_missing(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with some NaN, so the imputer's statistics reach the ONNX graph too."""
    holed = frame.copy()
    holed.iloc[::7, 3] = np.nan
    return holed


@pytest.mark.parametrize("model_type", list(ModelType))
def test_each_classifier_converts_and_agrees_on_the_holdout(model_type: ModelType) -> None:
    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    x = with_missing(x)
    pipeline = build_pipeline(model_type, x, seed=0).fit(x.iloc[:400], y.iloc[:400])
    model, reference = convert(pipeline, x.iloc[400:])  # checked on all of it, or raises
    predictor = OnnxPredictor(model.SerializeToString(), reference.classes)
    assert disagreement(predictor, reference) is None
    proba = predictor.run(x.iloc[400:].to_numpy())
    np.testing.assert_allclose(proba, pipeline.predict_proba(x.iloc[400:]), atol=1e-5)
    assert reference.classes == [0, 1]
    assert len(reference.inputs) == 20
    assert any(value is None for row in reference.inputs for value in row)  # NaN -> null


@pytest.mark.parametrize(
    "regressor",
    [Ridge(), RandomForestRegressor(50, random_state=0)],
    ids=["linear", "random_forest"],
)
def test_each_regressor_converts_and_agrees_relatively(regressor: Any) -> None:
    x, y = load_diabetes(return_X_y=True, as_frame=True)
    x = with_missing(x)
    preprocess = build_pipeline(ModelType.LOGISTIC_REGRESSION, x, seed=0).steps[0][1]
    pipeline = Pipeline([("preprocess", preprocess), ("model", regressor)])
    pipeline.fit(x.iloc[:300], y.iloc[:300])
    model, reference = convert(pipeline, x.iloc[300:])
    assert reference.classes is None
    assert reference.probabilities is None
    predictor = OnnxPredictor(model.SerializeToString(), None)
    predictions = predictor.run(x.iloc[300:].to_numpy())
    np.testing.assert_allclose(predictions, pipeline.predict(x.iloc[300:]), rtol=1e-5)


def test_a_non_numeric_signature_is_not_converted() -> None:
    x = pd.DataFrame({"size": [1.0, 2.0, 3.0, 4.0], "colour": ["a", "b", "a", "b"]})
    pipeline = build_pipeline(ModelType.LOGISTIC_REGRESSION, x, seed=0).fit(x, [0, 1, 0, 1])
    with pytest.raises(ConversionError, match="only all-numeric inputs"):
        convert(pipeline, x)


def test_a_model_that_disagrees_is_not_converted() -> None:
    # HistGradientBoosting compares float64 inputs with float64 thresholds; onnxruntime's tree
    # ensembles (ai.onnx.ml 3) compare in float32, which moves regression outputs by ~1%.
    # Its classifier agrees (above); the regressor stays on scikit-learn.
    x, y = load_diabetes(return_X_y=True, as_frame=True)
    preprocess = build_pipeline(ModelType.LOGISTIC_REGRESSION, x, seed=0).steps[0][1]
    pipeline = Pipeline([("preprocess", preprocess), ("model", HistGradientBoostingRegressor())])
    pipeline.fit(x.iloc[:300], y.iloc[:300])
    with pytest.raises(ConversionError, match=r"on the holdout, predictions differ by up to"):
        convert(pipeline, x.iloc[300:])


def onnx_named(folder: Path) -> bool:
    return ONNX_METADATA in yaml.safe_load((folder / "MLmodel").read_text())["metadata"]


def test_a_downloaded_twin_is_verified_again_and_kept_only_if_it_agrees(
    exported_model: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(exported_model.resolve(), folder)
    assert onnx_named(folder), "the default model exported without its ONNX twin"
    assert reverify(folder) is None
    assert onnx_named(folder)
    # A twin of another model (fitted on 60 rows): loads fine, answers differently.
    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    other = build_pipeline(ModelType.LOGISTIC_REGRESSION, x, seed=0).fit(x.iloc[:60], y.iloc[:60])
    onnx, _ = convert(other, x)
    (folder / ONNX_FILE).write_bytes(onnx.SerializeToString())
    reason = reverify(folder)
    assert reason is not None
    assert reason.startswith("on its reference rows, ")
    assert not onnx_named(folder), "a twin that disagrees is still named: the image would use it"
    assert reverify(folder) is None  # no twin named: scikit-learn serves it, nothing to check

"""Regression end to end: the bundled diabetes data, every regressor, the metrics and plots, and
the exported regressor served over HTTP with the same rules as a classifier."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient

from {{ cookiecutter.package_name }}.config import (
    ModelType,
    ServeSettings,
    Task,
    TrainSettings,
)
from {{ cookiecutter.package_name }}.data import (
    BUNDLED_REGRESSION_SOURCE,
    DataError,
    load_dataset,
    split,
)
from {{ cookiecutter.package_name }}.evaluate import (
    Holdout,
    metrics,
)
from {{ cookiecutter.package_name }}.pipeline import (
    build_pipeline,
)
from {{ cookiecutter.package_name }}.serve.app import (
    create_app,
)
from {{ cookiecutter.package_name }}.serve.loading import (
    load_model,
)
from {{ cookiecutter.package_name }}.train import (
    TrainResult,
    run,
)

DIABETES = load_dataset(None, "target", Task.REGRESSION)


@pytest.fixture(scope="module")
def trained_regressor(train_settings: Callable[..., TrainSettings]) -> TrainResult:
    return run(train_settings(task=Task.REGRESSION))


@pytest.fixture(scope="module")
def regressor_client(trained_regressor: TrainResult) -> Iterator[TestClient]:
    assert trained_regressor.export_dir is not None
    settings = ServeSettings(model_uri=str(trained_regressor.export_dir), max_batch_size=50)
    served = load_model(settings.model_uri)
    with TestClient(create_app(settings, model=served)) as client:
        yield client


def test_bundled_regression_data_is_diabetes() -> None:
    assert DIABETES.source == BUNDLED_REGRESSION_SOURCE
    assert DIABETES.features.shape == (442, 10)
    assert DIABETES.target.dtype == "float64"
    parts = split(DIABETES, 0.2, seed=0)  # no stratification by a continuous target
    assert (len(parts.x_train), len(parts.x_test)) == (353, 89)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a,y\n1,low\n2,high\n", r"TARGET_COLUMN='y' of .* not numeric \(first on line 2: 'low'"),
        ("a,y\n1,5\n2,5\n", r"TARGET_COLUMN='y' of .* is always 5\.0; a regressor needs"),
        ("a,y\n1,5\n2,inf\n", r"column 'y' of .* has 1 infinite values"),
    ],
    ids=["text", "constant", "infinite"],
)
def test_targets_no_regressor_can_use_are_named(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "data.csv").write_text(content)
    with pytest.raises(DataError, match=message) as error:
        load_dataset(tmp_path / "data.csv", "y", Task.REGRESSION)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("model_type", list(ModelType))
def test_every_regressor_fits_gaps_and_categories(model_type: ModelType) -> None:
    rng = np.random.default_rng(0)
    size = rng.normal(size=200)
    colour = rng.choice(["red", "blue"], size=200).astype(object)
    y = pd.Series(3 * size + np.where(colour == "red", 2.0, 0.0), name="y")
    size[::10] = np.nan
    x = pd.DataFrame({"size": size, "colour": colour})
    model = build_pipeline(model_type, x, seed=0, task=Task.REGRESSION).fit(x, y)
    assert not hasattr(model, "predict_proba")
    scores = metrics(Holdout.of(model, x, y))
    assert set(scores) == {"rmse", "mae", "r2"}
    assert scores["r2"] > 0.7
    assert 0 < scores["mae"] <= scores["rmse"]


def test_a_regression_run_logs_its_metrics_and_plots(
    trained_regressor: TrainResult, tracking_uri: str
) -> None:
    client = MlflowClient(tracking_uri)
    logged = client.get_run(trained_regressor.run_id).data
    assert set(logged.metrics) == {"rmse", "mae", "r2"}
    assert logged.params["task"] == "regression"
    assert logged.params["data_source"] == BUNDLED_REGRESSION_SOURCE
    assert trained_regressor.gate.rule == "r2 >= 0.3"
    assert trained_regressor.gate.passed
    plots = {a.path for a in client.list_artifacts(trained_regressor.run_id, "plots")}
    assert plots == {"plots/predicted_vs_actual.png", "plots/residuals.png"}


def test_a_regressor_is_served_with_predictions_only(
    regressor_client: TestClient, trained_regressor: TrainResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    metadata = regressor_client.get("/metadata").json()
    assert "classes" not in metadata
    assert [f["name"] for f in metadata["features"]] == list(DIABETES.features.columns)
    rows = DIABETES.features.iloc[:5]
    body = regressor_client.post(
        "/predict", json={"instances": rows.to_dict(orient="records")}
    ).json()
    assert set(body) == {"predictions", "model_version"}
    assert trained_regressor.export_dir is not None
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")  # MLflow's own loader
    reference = mlflow.pyfunc.load_model(str(trained_regressor.export_dir)).predict(rows)
    assert body["predictions"] == pytest.approx(reference.tolist())
    # /invocations answers as `mlflow models serve` does for a regressor: a list of numbers.
    split_payload = {"dataframe_split": rows.to_dict(orient="split", index=False)}
    invocations = regressor_client.post("/invocations", json=split_payload).json()
    assert invocations == {"predictions": pytest.approx(reference.tolist())}


def test_a_regressor_keeps_every_request_rule(regressor_client: TestClient) -> None:
    row = DIABETES.features.iloc[0].to_dict()
    unknown = regressor_client.post("/predict", json={"instances": [row | {"extra": 1.0}]})
    assert unknown.status_code == 422
    too_many = regressor_client.post("/predict", json={"instances": [row] * 51})
    assert too_many.status_code == 422
    assert "MAX_BATCH_SIZE is 50" in too_many.text
    text = regressor_client.post("/predict", json={"instances": [row | {"age": "old"}]})
    assert text.status_code == 422

"""Which features may be null comes from the training data, and /metadata survives NaN in it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline

from {{ cookiecutter.package_name }}.config import (
    ModelType,
    ServeSettings,
    TrainSettings,
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
from {{ cookiecutter.package_name }}.serve.nullable import (
    NULLABLE_FEATURES,
    nullable_features,
)
from {{ cookiecutter.package_name }}.train import (
    run,
)

ROWS = 300


def gappy_frame() -> pd.DataFrame:
    """Training data whose gaps all lie after the first rows (where MLflow takes its example)."""
    rng = np.random.default_rng(7)
    full = rng.normal(size=ROWS)
    gappy = rng.normal(size=ROWS)
    gappy[[50, 120, 250]] = np.nan
    city = rng.choice(["paris", "lyon"], ROWS).astype(object)
    city[[60, 200]] = np.nan
    return pd.DataFrame(
        {
            "full": full,
            "gappy": gappy,
            "empty": np.full(ROWS, np.nan),
            "city": city,
            "target": (full > 0).astype(int),
        }
    )


def test_a_pipeline_without_imputers_lets_only_columns_with_gaps_be_null() -> None:
    frame = gappy_frame().drop(columns=["city", "empty", "target"])
    target = gappy_frame()["target"]
    # HistGradientBoosting takes NaN itself: nothing is imputed, so only the gaps decide.
    pipeline = Pipeline(
        [
            ("columns", ColumnTransformer([("as_is", "passthrough", list(frame.columns))])),
            ("model", HistGradientBoostingClassifier(max_iter=5)),
        ]
    ).fit(frame, target)
    assert nullable_features(pipeline, frame) == ["gappy"]
    assert nullable_features(pipeline, frame.head(5)) == []  # what the example alone would say


def test_columns_the_pipeline_imputes_may_be_null_even_without_gaps() -> None:
    frame = gappy_frame().drop(columns=["target"])
    pipeline = build_pipeline(ModelType.RANDOM_FOREST, frame, seed=0)
    pipeline.fit(frame, gappy_frame()["target"])
    assert nullable_features(pipeline, frame.dropna(axis=1)) == ["full"]  # imputed, no gaps
    assert nullable_features(pipeline, frame) == ["full", "gappy", "empty", "city"]


@pytest.fixture(scope="module")
def gappy_model(
    train_settings: Callable[..., TrainSettings], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A model trained by the project's own training on a CSV with gaps and an empty column."""
    csv = tmp_path_factory.mktemp("gappy") / "gappy.csv"
    gappy_frame().to_csv(csv, index=False)
    result = run(train_settings(data_path=csv, gate_min=0.5))
    assert result.export_dir is not None
    return result.export_dir


@pytest.fixture
def gappy_client(gappy_model: Path) -> Iterator[TestClient]:
    app = create_app(ServeSettings(model_uri=str(gappy_model)), model=load_model(str(gappy_model)))
    with TestClient(app) as client:
        yield client


def test_the_exported_model_records_the_nullable_features(gappy_model: Path) -> None:
    metadata = yaml.safe_load((gappy_model / "MLmodel").read_text())["metadata"]
    assert metadata[NULLABLE_FEATURES] == ["full", "gappy", "empty", "city"]


def test_metadata_answers_for_a_model_trained_with_an_all_nan_column(
    gappy_client: TestClient,
) -> None:
    response = gappy_client.get("/metadata")
    assert response.status_code == 200
    body = response.json()
    example = body["example"]["instances"][0]
    assert example["empty"] is None
    assert {f["name"]: f["nullable"] for f in body["features"]} == dict.fromkeys(
        ["full", "gappy", "empty", "city"], True
    )
    assert gappy_client.post("/predict", json=body["example"]).status_code == 200


@pytest.mark.parametrize(
    "row",
    [
        {"full": 1.0, "gappy": None, "empty": None, "city": "paris"},
        {"full": None, "gappy": 0.5, "empty": None, "city": None},
        {"full": -1.0, "gappy": None, "empty": 3.0, "city": "lyon"},
    ],
    ids=["gap", "imputed-and-text", "empty-column-given-a-value"],
)
def test_nulls_are_predicted_on_both_endpoints(
    gappy_client: TestClient, row: dict[str, Any]
) -> None:
    predicted = gappy_client.post("/predict", json={"instances": [row]})
    assert predicted.status_code == 200, predicted.text
    invoked = gappy_client.post("/invocations", json={"dataframe_records": [row]})
    assert invoked.json()["predictions"] == predicted.json()["predictions"]


def test_every_feature_must_still_be_sent(gappy_client: TestClient) -> None:
    response = gappy_client.post("/predict", json={"instances": [{"full": 1.0}]})
    assert response.status_code == 422
    assert "row 0: missing feature 'gappy'" in response.json()["detail"]

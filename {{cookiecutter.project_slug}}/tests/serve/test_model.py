"""Predicting exactly like the pipeline: the fast numeric path and the pipeline's own path."""

from __future__ import annotations

from typing import Any

import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
import skops.io
from mlflow.models import infer_signature
from sklearn.datasets import load_breast_cancer

from {{ cookiecutter.package_name }}.config import (
    ModelType,
)
from {{ cookiecutter.package_name }}.pipeline import (
    build_pipeline,
)
from {{ cookiecutter.package_name }}.serve.features import (
    Feature,
)
from {{ cookiecutter.package_name }}.serve.loading import (
    load_model,
)
from {{ cookiecutter.package_name }}.serve.model import (
    ServedModel,
    to_frame,
)


def test_fast_path_predicts_like_the_pipeline(
    served_model: ServedModel, example_rows: list[dict[str, Any]]
) -> None:
    assert served_model.fast  # the default pipeline qualifies for the array path
    frame = load_breast_cancer(as_frame=True).data
    rows = frame.to_numpy().tolist()
    result = served_model.predict(rows)
    assert result.predictions == served_model.estimator.predict(frame).tolist()
    assert result.probabilities is not None
    # The scikit-learn fast path computes what the pipeline does; onnxruntime agrees within
    # the tolerance checked at export and load (its float sums differ in the last bits).
    rtol, atol = (1e-9, 0.0) if served_model.runtime == "scikit-learn" else (0.0, 1e-5)
    np.testing.assert_allclose(
        result.probabilities, served_model.estimator.predict_proba(frame), rtol=rtol, atol=atol
    )


@pytest.fixture(scope="module")
def mixed_model(tmp_path_factory: pytest.TempPathFactory) -> ServedModel:
    """A model with integer, boolean and string columns, saved the way training saves models."""
    rng = np.random.default_rng(0)
    n = 200
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "smoker": rng.integers(0, 2, n).astype(bool),
            "city": rng.choice(["paris", "lyon", "nice"], n),
        }
    )
    target = (frame["age"] > 50).astype(int)
    pipeline = build_pipeline(ModelType.LOGISTIC_REGRESSION, frame, seed=0).fit(frame, target)
    folder = tmp_path_factory.mktemp("mixed") / "model"
    mlflow.sklearn.save_model(
        pipeline,
        folder,
        signature=infer_signature(frame, pipeline.predict(frame)),
        input_example=frame.head(2),
        serialization_format="skops",
        skops_trusted_types=list(skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))),
        pip_requirements=["scikit-learn"],  # skips MLflow's slow requirement inference
    )
    return load_model(str(folder))


def test_mixed_types_go_through_the_pipeline(mixed_model: ServedModel) -> None:
    assert [(f.name, f.type) for f in mixed_model.features] == [
        ("age", "long"),
        ("smoker", "boolean"),
        ("city", "string"),
    ]
    assert not mixed_model.fast
    rows = [[70, True, "lyon"], [20, False, "nice"], [60, False, "unknown-city"]]
    frame = pd.DataFrame(rows, columns=mixed_model.names)
    result = mixed_model.predict(rows)
    assert result.predictions == mixed_model.estimator.predict(frame).tolist()
    assert result.probabilities is not None
    assert len(result.probabilities[0]) == 2


def test_optional_integer_column_with_nulls_becomes_float_nan() -> None:
    features = [Feature("n", "long", required=False), Feature("s", "string")]
    frame = to_frame(features, [[1, "a"], [None, "b"]])
    assert frame["n"].dtype == np.float64
    assert np.isnan(frame["n"].iloc[1])
    assert frame["s"].tolist() == ["a", "b"]

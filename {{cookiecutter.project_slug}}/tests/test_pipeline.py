"""The preprocessing + estimator pipeline and its metrics, for every model type."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris

from {{ cookiecutter.package_name }}.config import (
    ModelType,
)
from {{ cookiecutter.package_name }}.evaluate import (
    Holdout,
    metrics,
)
from {{ cookiecutter.package_name }}.pipeline import (
    build_pipeline,
)
from {{ cookiecutter.package_name }}.train import (
    trusted_types,
)


def mixed_frame(rows: int = 120) -> tuple[pd.DataFrame, pd.Series]:
    """Numeric and categorical columns, with gaps in both; the label depends on each."""
    rng = np.random.default_rng(0)
    size = rng.normal(size=rows)
    colour = rng.choice(["red", "green", "blue"], size=rows).astype(object)
    label = np.where((size > 0) | (colour == "red"), "yes", "no")
    size[::10] = np.nan
    colour[::7] = np.nan
    return pd.DataFrame({"size": size, "colour": colour}), pd.Series(label, name="label")


# Tree models hold types skops only loads when told to trust them.
TRUSTED = {
    ModelType.LOGISTIC_REGRESSION: set(),
    ModelType.RANDOM_FOREST: {"sklearn.tree._tree.Tree"},
    ModelType.HIST_GRADIENT_BOOSTING: {
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
    },
}


@pytest.mark.parametrize("model_type", list(ModelType))
def test_every_model_handles_gaps_and_unseen_categories(model_type: ModelType) -> None:
    x, y = mixed_frame()
    model = build_pipeline(model_type, x, seed=0).fit(x, y)
    unseen = pd.DataFrame({"size": [0.5, np.nan], "colour": ["purple", np.nan]}, dtype=object)
    unseen["size"] = unseen["size"].astype("float64")
    proba = model.predict_proba(unseen)
    assert proba.shape == (2, 2)
    assert list(model.classes_) == ["no", "yes"]
    assert metrics(Holdout.of(model, x, y))["accuracy"] > 0.8
    assert TRUSTED[model_type] <= set(trusted_types(model))


def test_categorical_columns_are_one_hot_encoded() -> None:
    x, y = mixed_frame()
    model = build_pipeline(ModelType.LOGISTIC_REGRESSION, x, seed=0).fit(x, y)
    names = list(model.named_steps["preprocess"].get_feature_names_out())
    assert names == ["size", "colour_blue", "colour_green", "colour_missing", "colour_red"]


def test_multiclass_metrics_are_macro_and_one_vs_rest() -> None:
    x, y = load_iris(return_X_y=True, as_frame=True)
    model = build_pipeline(ModelType.LOGISTIC_REGRESSION, x, seed=0).fit(x, y)
    scores = metrics(Holdout.of(model, x, y))
    assert set(scores) == {"accuracy", "f1", "roc_auc", "log_loss"}
    assert scores["f1"] > 0.9
    assert scores["roc_auc"] > 0.95
    assert 0 < scores["log_loss"] < 0.5

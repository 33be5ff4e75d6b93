"""The scikit-learn pipeline: numeric and categorical preprocessing, then the task's estimator."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from .config import ModelType, Task

# Fixed, reasonable hyperparameters per estimator; each is logged to MLflow as a param.
# The trees take the same ones for both tasks; the linear regressor is Ridge (L2, like C).
_TREES: dict[ModelType, dict[str, Any]] = {
    ModelType.RANDOM_FOREST: {"n_estimators": 200, "max_depth": None, "min_samples_leaf": 1},
    ModelType.HIST_GRADIENT_BOOSTING: {"max_iter": 200, "learning_rate": 0.1, "max_leaf_nodes": 31},
}
HYPERPARAMETERS_BY_TASK: dict[Task, dict[ModelType, dict[str, Any]]] = {
    Task.CLASSIFICATION: {ModelType.LOGISTIC_REGRESSION: {"C": 1.0, "max_iter": 1000}, **_TREES},
    Task.REGRESSION: {ModelType.LOGISTIC_REGRESSION: {"alpha": 1.0}, **_TREES},
}

ESTIMATORS: dict[Task, dict[ModelType, Any]] = {
    Task.CLASSIFICATION: {
        ModelType.LOGISTIC_REGRESSION: LogisticRegression,
        ModelType.RANDOM_FOREST: RandomForestClassifier,
        ModelType.HIST_GRADIENT_BOOSTING: HistGradientBoostingClassifier,
    },
    Task.REGRESSION: {
        ModelType.LOGISTIC_REGRESSION: Ridge,
        ModelType.RANDOM_FOREST: RandomForestRegressor,
        ModelType.HIST_GRADIENT_BOOSTING: HistGradientBoostingRegressor,
    },
}


def build_pipeline(
    model_type: ModelType, features: pd.DataFrame, seed: int, task: Task = Task.CLASSIFICATION
) -> Pipeline:
    """Preprocess the columns of `features` by dtype and end in a `model_type` estimator."""
    numeric = [c for c in features.columns if pd.api.types.is_numeric_dtype(features[c])]
    categorical = [c for c in features.columns if c not in numeric]
    preprocess = ColumnTransformer(
        [
            (
                "numeric",
                Pipeline(
                    [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
                ),
                numeric,
            ),
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                        # Dense output: HistGradientBoosting does not take sparse input.
                        (
                            "encode",
                            OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                        ),
                    ]
                ),
                categorical,
            ),
        ],
        verbose_feature_names_out=False,
    )
    return Pipeline([("preprocess", preprocess), ("model", _estimator(task, model_type, seed))])


def _estimator(task: Task, model_type: ModelType, seed: int) -> Any:
    return ESTIMATORS[task][model_type](
        **HYPERPARAMETERS_BY_TASK[task][model_type], random_state=seed
    )

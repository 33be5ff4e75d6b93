"""The scikit-learn pipeline: numeric and categorical preprocessing, then a classifier."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from .config import ModelType

# Fixed, reasonable hyperparameters per estimator; each is logged to MLflow as a param.
HYPERPARAMETERS: dict[ModelType, dict[str, Any]] = {
    ModelType.LOGISTIC_REGRESSION: {"C": 1.0, "max_iter": 1000},
    ModelType.RANDOM_FOREST: {"n_estimators": 200, "max_depth": None, "min_samples_leaf": 1},
    ModelType.HIST_GRADIENT_BOOSTING: {"max_iter": 200, "learning_rate": 0.1, "max_leaf_nodes": 31},
}

ESTIMATORS: dict[ModelType, Any] = {
    ModelType.LOGISTIC_REGRESSION: LogisticRegression,
    ModelType.RANDOM_FOREST: RandomForestClassifier,
    ModelType.HIST_GRADIENT_BOOSTING: HistGradientBoostingClassifier,
}


def build_pipeline(model_type: ModelType, features: pd.DataFrame, seed: int) -> Pipeline:
    """Preprocess the columns of `features` by dtype and end in a `model_type` classifier."""
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
    return Pipeline([("preprocess", preprocess), ("model", _estimator(model_type, seed))])


def _estimator(model_type: ModelType, seed: int) -> Any:
    return ESTIMATORS[model_type](**HYPERPARAMETERS[model_type], random_state=seed)

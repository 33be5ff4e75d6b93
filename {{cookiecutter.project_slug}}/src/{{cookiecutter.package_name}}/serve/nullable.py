"""Which features may be null when serving, decided from the training data, not the example.

MLflow infers `required` from the few rows of the input example, so a random seed would decide
whether a column with gaps takes `null`. Training records the answer in the model's metadata
instead: a feature may be null if it had missing values in training, or if the fitted
pipeline imputes it. The server reads that list (see loading.load_model).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the server imports this module for its key, without pandas
    import pandas as pd

# The key in the MLmodel `metadata` holding the list of feature names that may be null.
NULLABLE_FEATURES = "nullable_features"


def nullable_features(pipeline: Any, features: pd.DataFrame) -> list[str]:
    """Names of the columns of `features` (the training data) that may be null when serving."""
    imputed = _imputed_columns(pipeline, [str(c) for c in features.columns])
    return [
        str(column)
        for column in features.columns
        if str(column) in imputed or bool(features[column].isna().any())
    ]


def _imputed_columns(pipeline: Any, names: list[str]) -> set[str]:
    """Columns a fitted Pipeline(ColumnTransformer(...), ...) sends through an imputer first."""
    steps = getattr(pipeline, "steps", None)
    first = steps[0][1] if steps else pipeline
    imputed: set[str] = set()
    for _, transformer, columns in getattr(first, "transformers_", []):
        if _imputes(transformer):
            imputed.update(_column_names(columns, names))
    return imputed


def _imputes(transformer: Any) -> bool:
    steps = getattr(transformer, "steps", None)
    head = steps[0][1] if steps else transformer
    return type(head).__module__.startswith("sklearn.impute")


def _column_names(columns: Any, names: list[str]) -> list[str]:
    if isinstance(columns, str | int):
        columns = [columns]
    selected = list(columns) if isinstance(columns, list | tuple) else []
    return [names[c] if isinstance(c, int) else str(c) for c in selected]

"""The loaded model: predictions on validated rows, through the fast path or the pipeline.

`loading.load_model` builds it from an exported folder; `fast_path` holds the array path it
uses when that path predicts exactly like the pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .fast_path import checked_fast_path
from .loading import NUMERIC_TYPES, Feature


class NonFinitePredictionError(ValueError):
    """The model computed NaN or an infinity for some rows (finite inputs of extreme size)."""

    def __init__(self, rows: list[int]) -> None:
        super().__init__(f"rows {rows} gave a non-finite prediction")
        self.rows = rows


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
        example_row = [example[name] for name in self.names] if example is not None else None
        self._fast = (
            checked_fast_path(estimator, self.names, example_row, self.frame)
            if self.numeric
            else None
        )

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


def _check_finite(values: np.ndarray[Any, Any]) -> None:
    """Raise NonFinitePredictionError naming the rows of `values` (2-D) that are not all finite."""
    finite = np.isfinite(values).all(axis=1)
    if not finite.all():
        raise NonFinitePredictionError(np.flatnonzero(~finite).tolist())


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

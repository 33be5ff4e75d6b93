"""The loaded model: predictions on validated rows, via onnxruntime, the fast path or the pipeline.

`loading.load_model` builds it from an exported folder. `onnx_runtime` serves a converted
model that agreed with scikit-learn on its reference rows; else `fast_path` holds the array
path used when that path predicts exactly like the pipeline. pandas and scikit-learn are
imported only on the scikit-learn paths, so an ONNX-served process never loads them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .fast_path import checked_fast_path
from .features import NUMERIC_TYPES, Feature
from .onnx_runtime import RUNTIME as ONNX_RUNTIME
from .onnx_runtime import OnnxPredictor
from .requests import Rows

if TYPE_CHECKING:
    import pandas as pd

SKLEARN_RUNTIME = "scikit-learn"


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
    """A loaded model (scikit-learn, or ONNX checked against it) plus what MLmodel says about it.

    With `onnx`, `estimator` may be None and `load_estimator` loads the scikit-learn
    pipeline only if something asks for it (tests compare against it; serving never does).
    """

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
        onnx: OnnxPredictor | None = None,
        runtime_note: str | None = None,
        load_estimator: Callable[[], Any] | None = None,
        drift_reference: dict[str, Any] | None = None,
    ) -> None:
        self._estimator = estimator
        self._load_estimator = load_estimator
        self.features = tuple(features)
        self.names = [f.name for f in self.features]
        self.name, self.version, self.run_id = name, version, run_id
        self.example = example
        self.source = source
        self.numeric = all(f.type in NUMERIC_TYPES for f in self.features)
        self._onnx = onnx if self.numeric else None
        # Which runtime serves predictions, and why not ONNX when it was offered but not used.
        self.runtime = ONNX_RUNTIME if self._onnx is not None else SKLEARN_RUNTIME
        self.runtime_note = runtime_note
        self.drift_reference = drift_reference  # training's bins per feature, for /metrics
        self._fast = None
        if self._onnx is not None:
            self.has_proba = self._onnx.classes is not None
            self.classes: list[Any] | None = self._onnx.classes
            self._class_array = np.asarray(self.classes) if self.classes is not None else None
        else:
            self.has_proba = hasattr(estimator, "predict_proba")
            self.classes = (
                np.asarray(estimator.classes_).tolist() if hasattr(estimator, "classes_") else None
            )
            self._class_array = (
                np.asarray(estimator.classes_) if hasattr(estimator, "classes_") else None
            )
            example_row = [example[n] for n in self.names] if example is not None else None
            self._fast = (
                checked_fast_path(estimator, self.names, example_row, self.frame)
                if self.numeric
                else None
            )

    def configure_thread(self) -> None:
        """Set up the calling thread, which will predict: scikit-learn's config is per thread.

        Rows are checked finite before they reach the model, so scikit-learn skips its check.
        onnxruntime needs nothing (and scikit-learn may not be installed then).
        """
        if self.runtime == SKLEARN_RUNTIME:
            import sklearn

            sklearn.set_config(assume_finite=True)

    @property
    def estimator(self) -> Any:
        """The scikit-learn pipeline (loaded on first use when ONNX serves)."""
        if self._estimator is None and self._load_estimator is not None:
            self._estimator = self._load_estimator()
        return self._estimator

    @property
    def fast(self) -> bool:
        """Whether predictions skip pandas and scikit-learn's ColumnTransformer dispatch."""
        return self._fast is not None or self._onnx is not None

    def predict(self, rows: Rows) -> Prediction:
        """Predict validated rows (values in signature order, or one float array of them).

        Raises NonFinitePredictionError rather than return a NaN or infinite result, or a label
        chosen from one.
        """
        with np.errstate(all="ignore"):  # overflow is caught below, not warned about
            return self._predict(rows)

    def _predict(self, rows: Rows) -> Prediction:
        if self._onnx is not None:  # a null is NaN in a float array, as in the pipeline's frame
            out = self._onnx.run(np.asarray(rows, dtype=np.float64))
            if self.has_proba:
                return self._from_proba(out)
            _check_finite(out.reshape(len(out), -1))
            return Prediction(out.tolist(), None)
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

    def frame(self, rows: Rows) -> pd.DataFrame:
        """Rows as the DataFrame the pipeline was trained on (column names and dtypes)."""
        return to_frame(self.features, rows)

    def _from_proba(self, proba: np.ndarray[Any, Any]) -> Prediction:
        _check_finite(proba)
        # argmax over predict_proba is what predict() does for these classifiers; one pass not two.
        assert self._class_array is not None  # a model with probabilities has classes
        labels = self._class_array[np.argmax(proba, axis=1)]
        return Prediction(labels.tolist(), proba.tolist())


def _check_finite(values: np.ndarray[Any, Any]) -> None:
    """Raise NonFinitePredictionError naming the rows of `values` (2-D) that are not all finite."""
    finite = np.isfinite(values).all(axis=1)
    if not finite.all():
        raise NonFinitePredictionError(np.flatnonzero(~finite).tolist())


def to_frame(features: Sequence[Feature], rows: Rows) -> pd.DataFrame:
    """Validated rows (values in signature order) as a DataFrame typed like the signature."""
    import pandas as pd  # the scikit-learn paths only: an ONNX-served process never loads it

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

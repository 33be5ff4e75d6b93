"""The fast numeric path: a fitted pipeline applied to a float array, checked against itself.

Each column group goes straight to its fitted transformer as an array slice, which skips
pandas indexing and scikit-learn's ColumnTransformer dispatch and is several times faster
for one row. Built only for all-numeric signatures, and used only when it matches the real
pipeline on the input example and perturbed copies of it.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


class FastPipeline:
    """Pipeline(ColumnTransformer(...), ..., classifier) applied to a float array."""

    def __init__(self, groups: list[tuple[Any, list[int]]], steps: list[Any]) -> None:
        self.groups = groups
        self.steps = steps

    @classmethod
    def build(cls, estimator: Any, names: list[str]) -> FastPipeline | None:
        """The array path for `estimator` with inputs in the order `names`, if it has one."""
        from sklearn.compose import ColumnTransformer
        from sklearn.pipeline import Pipeline

        if not isinstance(estimator, Pipeline) or len(estimator.steps) < 2:
            return None
        first = estimator.steps[0][1]
        final = estimator.steps[-1][1]
        if not isinstance(first, ColumnTransformer) or not hasattr(final, "predict_proba"):
            return None
        if getattr(first, "sparse_output_", False):
            return None
        position = {name: i for i, name in enumerate(names)}
        fitted_names = list(getattr(first, "feature_names_in_", names))
        groups: list[tuple[Any, list[int]]] = []
        for _, transformer, columns in first.transformers_:
            if isinstance(transformer, str) and transformer == "drop":
                continue
            indices = _indices(columns, fitted_names, position)
            if indices is None:
                return None
            if indices:
                groups.append((_unnamed(transformer), indices))
        return cls(groups, [_unnamed(step) for _, step in estimator.steps[1:]])

    def predict_proba(self, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        parts = [
            x[:, idx] if isinstance(t, str) else np.asarray(t.transform(x[:, idx]))
            for t, idx in self.groups
        ]
        out = np.hstack(parts) if len(parts) > 1 else parts[0]
        for step in self.steps[:-1]:
            out = step.transform(out)
        result: np.ndarray[Any, Any] = self.steps[-1].predict_proba(out)
        return result


def checked_fast_path(
    estimator: Any,
    names: list[str],
    example: list[Any] | None,
    frame: Callable[[list[list[Any]]], Any],
) -> FastPipeline | None:
    """The fast path for `estimator`, only if it predicts like the pipeline itself.

    `example` is the input example in `names` order; `frame(rows)` makes the DataFrame the
    pipeline takes. Without an example there is nothing to check against: no fast path.
    """
    fast = FastPipeline.build(estimator, names)
    if fast is None:
        return None
    if not _agrees(fast, estimator, _check_rows(example), frame):
        log.warning("fast predict path disagrees with the pipeline; using the pipeline")
        return None
    return fast


def _check_rows(example: list[Any] | None) -> list[list[Any]]:
    """The input example plus perturbed copies, so the check sees varied values."""
    if example is None:
        return []
    base = np.asarray(example, dtype=np.float64)
    return [example, *((base * scale).tolist() for scale in (0.5, 1.5, -1.0))]


def _agrees(
    fast: FastPipeline,
    estimator: Any,
    rows: list[list[Any]],
    frame: Callable[[list[list[Any]]], Any],
) -> bool:
    if not rows:
        return False
    try:
        got = fast.predict_proba(np.asarray(rows, dtype=np.float64))
    except Exception:  # any failure means the fast path does not fit this pipeline
        log.exception("fast predict path failed on the input example")
        return False
    reference = estimator.predict_proba(frame(rows))
    return bool(np.allclose(got, reference, rtol=1e-9, atol=1e-12))


def _unnamed(estimator: Any) -> Any:
    """A copy of `estimator` that takes arrays without warning that they lack column names.

    The names were checked against the signature already; the real pipeline is left as is.
    """
    if isinstance(estimator, str):  # "passthrough"
        return estimator
    unnamed = copy.deepcopy(estimator)
    for part in [unnamed, *(step for _, step in getattr(unnamed, "steps", []))]:
        if "feature_names_in_" in vars(part):  # a Pipeline only forwards its first step's
            del part.feature_names_in_
    return unnamed


def _indices(columns: Any, fitted_names: list[str], position: dict[str, int]) -> list[int] | None:
    """Signature positions of a ColumnTransformer column selection, None if not a plain list."""
    if isinstance(columns, str | int):
        columns = [columns]
    if not isinstance(columns, list | tuple | np.ndarray):
        return None
    indices = []
    for column in columns:
        name = fitted_names[column] if isinstance(column, int | np.integer) else column
        if name not in position:
            return None
        indices.append(position[name])
    return indices

"""A whole batch of numbers to the one float array the model takes, in a few C-level passes.

The per-value checks in requests.py decide and name every problem. This module answers one
question for a whole batch at once: would those checks accept every value as it is? If so,
it returns the batch as one contiguous float64 array (rows x features, a null as NaN, which is
what the model would have been given); if not, None, and the batch goes through the per-value
checks. No Python loop runs per value: `array`, `map`, `set`, `chain` and numpy iterate in C.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from itertools import chain
from typing import Any

import numpy as np

from .features import INTEGER_BOUNDS, NUMERIC_TYPES, Feature

# A batch is one array of the values the model takes, rows x features.
Array = np.ndarray[Any, np.dtype[np.float64]]
NUMBERS = frozenset({float, int})  # bool is an int subclass, but its type is bool: refused
NUMBERS_OR_NULL = NUMBERS | {type(None)}
# From this many values, packing them at once (_numbers) beats looking at each one's type;
# below it, its few numpy calls cost more than they save (a row of 30 values: ~2 us more).
PACK_FROM = 256


class NumericBatch:
    """The whole-batch check for a signature whose features are all numbers."""

    def __init__(self, features: Sequence[Feature]) -> None:
        self.width = len(features)
        self.applies = bool(features) and all(f.type in NUMERIC_TYPES for f in features)
        self.kinds = NUMBERS_OR_NULL if any(f.nullable for f in features) else NUMBERS
        self.nullable = np.array([f.nullable for f in features], dtype=bool)
        self.integral = np.array([f.type in INTEGER_BOUNDS for f in features], dtype=bool)
        self.bounds = np.array(
            [float(INTEGER_BOUNDS[f.type]) for f in features if f.type in INTEGER_BOUNDS]
        )

    def from_rows(self, rows: list[Any]) -> Array | None:
        """`rows` (lists of `width` values in feature order) as an array, or None."""
        if set(map(type, rows)) != {list} or set(map(len, rows)) != {self.width}:
            return None
        return self.from_values(list(chain.from_iterable(rows)), len(rows))

    def from_columns(self, columns: Sequence[list[Any]], rows: int) -> Array | None:
        """One list of `rows` values per feature, in feature order, as an array, or None."""
        if set(map(len, columns)) != {rows}:
            return None
        return self.from_values(list(chain.from_iterable(columns)), rows, by_column=True)

    def from_values(self, values: list[Any], rows: int, by_column: bool = False) -> Array | None:
        """`rows` x `width` values, row after row (feature after feature if `by_column`)."""
        if len(values) != rows * self.width:
            return None
        flat, nulls = _numbers(values) if len(values) >= PACK_FROM else None, False
        if flat is None:
            kinds = set(map(type, values))
            if not kinds <= self.kinds:
                return None  # a string, bool, nested value, or a null no feature takes
            nulls = type(None) in kinds
            try:  # fromiter is the faster; only np.array makes a null NaN
                if nulls:
                    flat = np.array(values, dtype=np.float64)
                else:
                    flat = np.fromiter(values, np.float64, len(values))
            except OverflowError:  # an int past the largest double
                return None
        if by_column:
            batch = np.ascontiguousarray(flat.reshape(self.width, rows).T)
        else:
            batch = flat.reshape(rows, self.width)
        return batch if self._acceptable(batch, nulls) else None

    def _acceptable(self, array: Array, nulls: bool) -> bool:
        """True if every value is finite, or NaN (a null) in a nullable feature, and every
        value of a long or integer feature is whole and within its bounds."""
        finite = np.isfinite(array)
        if not finite.all():
            if not nulls or np.isinf(array).any():  # 1e999 parses to an infinity
                return False
            if (~finite).any(axis=0)[~self.nullable].any():  # a null where none is allowed
                return False
        if self.bounds.size:
            whole = array[:, self.integral]
            with np.errstate(invalid="ignore"):  # NaN (a null) compares False, silently
                fits = (whole == np.trunc(whole)) & (np.abs(whole) < self.bounds)
            if not (fits | np.isnan(whole)).all():
                return False
        return True


def _numbers(values: list[Any]) -> Array | None:
    """`values` as a float array if every one is a number (an int or a float, no bool), with
    no null; else None, and the caller looks at each value's type.

    array("d") converts in one C pass and refuses strings, nulls and containers itself; a bool
    passes as 1.0 or 0.0, so only the values equal to 1 or 0 have their type looked at.
    """
    try:
        flat = np.frombuffer(array("d", values), dtype=np.float64)
    except (TypeError, OverflowError):  # not a number (or an int past the largest double)
        return None
    maybe_bool = np.flatnonzero((flat == 0.0) | (flat == 1.0)).tolist()
    if maybe_bool and bool in set(map(type, map(values.__getitem__, maybe_bool))):
        return None
    return flat

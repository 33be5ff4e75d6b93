"""Requests to rows: every check a prediction request passes, in one place and in order.

1. Framing (`body.RequestFraming`, ASGI middleware): both Content-Length and
   Transfer-Encoding is 400 and the connection closes (RFC 9112 §6.1, request smuggling); a
   Content-Length over MAX_BODY_BYTES is 413 before routing; a body read past it (chunked
   uploads) is 413 where it is read.
2. Headers (`body.read_json`): Content-Type application/json and no Content-Encoding, else 415.
3. Strict JSON (`body.parse_json`): no NaN/Infinity, duplicate keys, runaway digits or
   nesting: 400.
4. Shape (`RowValidator.predict_rows` / `invocation_rows`): the body's format, a non-empty
   batch within MAX_BATCH_SIZE, else 422.
5. Values (`RowValidator`): every feature of the signature with a value of its type, null
   only for a nullable feature, else 422 naming each row and feature.

A batch of numbers is checked whole first (`batch.NumericBatch`, a few C-level passes) and
becomes the one array the model takes; only a batch that check does not accept goes through
the per-value checks, which decide and name each problem. The V2 tensors of the Open
Inference Protocol (`tensors.py`) go through the same checks.

Validation is hand-written rather than a pydantic model built per signature: it is several
times faster for one row, and every problem is reported with its row and feature.
"""

from __future__ import annotations

import math
import operator
from collections import Counter
from collections.abc import Sequence
from itertools import chain
from typing import Any

import numpy as np

from .batch import Array, NumericBatch
from .errors import ApiError, short
from .features import INTEGER_BOUNDS, Feature

MAX_REPORTED_PROBLEMS = 20  # enough to fix a request, small enough to read

# The request formats MLflow's scoring server (`mlflow models serve`) accepts on /invocations.
INVOCATION_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")

# Checked rows: one float array for a batch of numbers, else lists of values in feature order.
Rows = list[list[Any]] | Array


class RowValidator:
    """Checks rows against the signature's named, typed columns."""

    def __init__(self, features: Sequence[Feature], max_batch_size: int) -> None:
        self.features = tuple(features)
        self.names = [f.name for f in self.features]
        self.position = {name: i for i, name in enumerate(self.names)}
        self.name_set = frozenset(self.names)
        self.max_batch_size = max_batch_size
        # A batch of numbers is checked whole, in a few passes; other batches value by value.
        self.batch = NumericBatch(self.features)
        # A record's values in signature order, in one call: a tuple for two names or more.
        self._pick = operator.itemgetter(*self.names) if self.names else None

    def predict_rows(self, payload: Any) -> Rows:
        """Rows from a /predict body: `{"instances": [{feature: value} | [values], ...]}`."""
        if not isinstance(payload, dict) or set(payload) != {"instances"}:
            keys = short(sorted(payload)) if isinstance(payload, dict) else type(payload).__name__
            raise ApiError(
                422,
                "expected an object with one key, 'instances'",
                f"got {keys}; send " + '{"instances": [{"<feature>": value, ...}, ...]}',
            )
        return self.rows(payload["instances"])

    def invocation_rows(self, payload: Any) -> Rows:
        """Rows from an /invocations body in any format of MLflow's scoring protocol."""
        if not isinstance(payload, dict):
            raise ApiError(
                422,
                "expected a JSON object",
                f"got {type(payload).__name__}; use one of {', '.join(INVOCATION_KEYS)}",
            )
        params = payload.get("params")
        keys = [key for key in payload if key != "params"]
        if len(keys) != 1 or keys[0] not in INVOCATION_KEYS:
            raise ApiError(
                422,
                f"expected exactly one of {', '.join(INVOCATION_KEYS)}",
                f"got keys {short(sorted(payload))}",
            )
        if params:
            raise ApiError(422, "this model takes no params", f"got params {short(params)}")
        data = payload[keys[0]]
        if keys[0] == "dataframe_split":
            return self.split_rows(data)
        if isinstance(data, dict) and keys[0] == "inputs":
            return self.column_rows(data)
        return self.rows(data)

    def split_rows(self, data: Any) -> Rows:
        """Rows from pandas' split orient: `{"columns": [...], "data": [[...], ...]}`."""
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise ApiError(
                422,
                "dataframe_split needs 'columns' and 'data'",
                'send {"columns": [names...], "data": [[values...], ...]}',
            )
        columns = data.get("columns", self.names)
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise ApiError(
                422, "dataframe_split 'columns' must be a list of names", f"got {short(columns)}"
            )
        if len(set(columns)) != len(columns):  # which value would a twice-named column take?
            twice = sorted(c for c, n in Counter(columns).items() if n > 1)
            raise ApiError(
                422,
                "dataframe_split names a column more than once",
                f"column(s) {short(twice)} appear more than once in 'columns'; name each once",
            )
        self._check_size(data["data"])
        if self.batch.applies and len(columns) == len(self.names) and set(columns) == self.name_set:
            array = self.batch.from_rows(data["data"])
            if array is not None and columns != self.names:  # reordered, still contiguous
                return np.ascontiguousarray(array[:, self._order(columns)])
            if array is not None:
                return array
        records = []
        for i, row in enumerate(data["data"]):
            if not isinstance(row, list) or len(row) != len(columns):
                raise ApiError(
                    422,
                    "bad row",
                    f"row {i}: expected a list of {len(columns)} values (one per column)",
                )
            records.append(dict(zip(columns, row, strict=True)))
        return self.rows(records)  # as many as data["data"]: the size check passes again

    def column_rows(self, data: dict[str, Any]) -> Rows:
        """Rows from a dict of columns: `{feature: [values...], ...}`."""
        lengths = {len(v) if isinstance(v, list) else -1 for v in data.values()}
        if len(lengths) != 1 or -1 in lengths:
            raise ApiError(
                422, "columns must be lists of equal length", [short(k) for k in sorted(data)]
            )
        if self.batch.applies and set(data) == self.name_set:
            [count] = lengths
            self.check_count(count)
            array = self.batch.from_columns([data[name] for name in self.names], count)
            if array is not None:
                return array
        records = [
            dict(zip(data, values, strict=True)) for values in zip(*data.values(), strict=True)
        ]
        return self.rows(records)

    def _order(self, columns: list[str]) -> list[int]:
        """Where each feature is among `columns` (which hold every feature once)."""
        return list(map(columns.index, self.names))

    def _check_size(self, instances: Any) -> None:
        if not isinstance(instances, list):
            raise ApiError(422, "expected a list of instances", f"got {type(instances).__name__}")
        self.check_count(len(instances))

    def check_count(self, count: int) -> None:
        """422 for an empty batch or one over MAX_BATCH_SIZE."""
        if not count:
            raise ApiError(422, "empty batch", "send at least one instance")
        if count > self.max_batch_size:
            raise ApiError(
                422,
                "batch too large",
                f"{count} instances; MAX_BATCH_SIZE is {self.max_batch_size}",
            )

    def rows(self, instances: Any) -> Rows:
        """Rows from a list of records (`{feature: value}`) or of lists in signature order."""
        self._check_size(instances)
        if self.batch.applies and (numeric := self._numeric_batch(instances)) is not None:
            return numeric
        return self.value_by_value(instances)

    def value_by_value(self, instances: list[Any]) -> list[list[Any]]:
        """Each value of each instance checked on its own; 422 naming every problem found."""
        problems: list[str] = []
        rows = []
        for i, instance in enumerate(instances):
            if isinstance(instance, dict):
                row = self._from_record(i, instance, problems)
            elif isinstance(instance, list):
                row = self._from_list(i, instance, problems)
            else:
                problems.append(
                    f"row {i}: expected an object of features or a list of "
                    f"{len(self.features)} values, got {type(instance).__name__}"
                )
                row = []
            rows.append(row)
            if len(problems) >= MAX_REPORTED_PROBLEMS:
                break
        if problems:
            raise ApiError(422, "invalid input", problems[:MAX_REPORTED_PROBLEMS])
        return rows

    def _numeric_batch(self, instances: list[Any]) -> Array | None:
        """The batch as one array if the whole-batch check accepts every value (batch.py);
        None sends it through the per-value checks, which then decide and name each problem."""
        shapes = set(map(type, instances))
        if shapes == {list}:
            return self.batch.from_rows(instances)
        if shapes != {dict} or set(map(len, instances)) != {len(self.names)}:
            return None  # a record of as many names as features, all known, has them all
        assert self._pick is not None  # features exist: a signature has at least one
        try:
            picked = list(map(self._pick, instances))
        except KeyError:
            return None
        values = picked if len(self.names) == 1 else list(chain.from_iterable(picked))
        return self.batch.from_values(values, len(instances))

    def _from_record(self, i: int, record: dict[str, Any], problems: list[str]) -> list[Any]:
        unknown = [key for key in record if key not in self.position]
        if unknown:
            problems.append(f"row {i}: unknown feature(s) {short(unknown)}; expected {self.names}")
        row = []
        for feature in self.features:
            if feature.name in record:
                row.append(self._value(i, feature, record[feature.name], problems))
            elif feature.required:
                problems.append(f"row {i}: missing feature {feature.name!r}")
            else:
                row.append(None)
        return row

    def _from_list(self, i: int, values: list[Any], problems: list[str]) -> list[Any]:
        if len(values) != len(self.features):
            problems.append(
                f"row {i}: expected {len(self.features)} values in the order {self.names}, "
                f"got {len(values)}"
            )
            return []
        return [
            self._value(i, feature, value, problems)
            for feature, value in zip(self.features, values, strict=True)
        ]

    @staticmethod
    def _value(i: int, feature: Feature, value: Any, problems: list[str]) -> Any:
        kind = feature.type
        # bool is an int subclass in Python; a JSON true is never a number here.
        if kind in ("double", "float"):
            if type(value) is float:
                if math.isfinite(value):  # 1e999 parses to inf
                    return value
            elif type(value) is int:
                try:
                    return float(value)
                except OverflowError:  # past the largest double
                    pass
            elif value is None and feature.nullable:
                return None
        elif kind in ("long", "integer"):
            whole = value if type(value) is int else None
            if type(value) is float and value.is_integer():
                whole = int(value)
            if whole is not None and abs(whole) < INTEGER_BOUNDS[kind]:
                return whole
            if value is None and feature.nullable:
                return None
        elif kind == "boolean":
            if type(value) is bool or (value is None and feature.nullable):
                return value
        elif type(value) is str or (value is None and feature.nullable):  # string
            return value
        problems.append(
            f"row {i}: feature {feature.name!r} expects {EXPECTED[kind]}, got {short(value)}"
        )
        return None


EXPECTED = {
    "double": "a finite number",
    "float": "a finite number",
    "long": "an integer",
    "integer": "an integer",
    "boolean": "true or false",
    "string": "a string",
}

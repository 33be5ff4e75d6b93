"""Open Inference Protocol (KServe V2) tensors: an infer request to checked rows, a prediction
to output tensors.

A request sends either one `[N, F]` tensor holding every feature in the signature's order (any
name that is not a feature's), or one `[N]` (or `[N, 1]`) tensor per feature, named like it.
Its datatype must be one the feature takes (any number type for a numeric feature, BOOL for a
boolean, BYTES for a string); the values are then checked as on /predict (requests.py), with
the same messages. A batch of numbers becomes one float array without a loop per value.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

from .errors import ApiError, short
from .features import NUMERIC_TYPES, Feature
from .model import Prediction
from .requests import MAX_REPORTED_PROBLEMS, Rows, RowValidator

NUMBER_DATATYPES: tuple[str, ...] = ("FP64", "FP32", "FP16", "INT64", "INT32", "INT16", "INT8")
NUMBER_DATATYPES += ("UINT64", "UINT32", "UINT16", "UINT8")
DATATYPES = frozenset({*NUMBER_DATATYPES, "BOOL", "BYTES"})
# What /v2/models/<name> advertises for each MLflow column type, and what each column takes.
FEATURE_DATATYPE = {
    "double": "FP64",
    "float": "FP32",
    "long": "INT64",
    "integer": "INT32",
    "boolean": "BOOL",
    "string": "BYTES",
}
TAKES: dict[str, tuple[str, ...]] = {kind: NUMBER_DATATYPES for kind in NUMERIC_TYPES}
TAKES.update({"boolean": ("BOOL",), "string": ("BYTES",)})
PREDICT, PROBA = "predict", "predict_proba"
TENSOR_KEYS = ("name", "shape", "datatype", "data")
REQUEST_KEYS = frozenset({"id", "parameters", "inputs", "outputs"})
BATCH_INPUT = "input-0"  # the name examples give the [N, F] tensor (any non-feature name works)


@dataclass(frozen=True, slots=True)
class Tensor:
    """One input tensor of a request, its data flattened in row-major order."""

    name: str
    shape: list[int]
    datatype: str
    values: list[Any]


@dataclass(frozen=True, slots=True)
class InferRequest:
    """A checked infer request: its rows, the outputs it asks for and its id, if any."""

    rows: Rows
    outputs: tuple[str, ...]
    id: str | None


def bad_request(error: str, detail: str) -> ApiError:
    return ApiError(422, error, detail)


def outputs_of(classes: list[Any] | None, probabilities: bool) -> tuple[str, ...]:
    """The outputs a model gives: `predict`, and `predict_proba` if it has probabilities."""
    return (PREDICT, PROBA) if classes is not None and probabilities else (PREDICT,)


def label_datatype(classes: list[Any] | None) -> str:
    """The V2 datatype of the `predict` output: the classes' type, FP64 for a regressor."""
    kinds = {type(c) for c in classes} if classes else {float}
    if kinds == {bool}:
        return "BOOL"
    if kinds == {int}:
        return "INT64"
    return "FP64" if kinds <= {int, float} else "BYTES"


class TensorReader:
    """Reads infer requests for one model (its features, and what it outputs)."""

    def __init__(
        self, validator: RowValidator, classes: list[Any] | None, probabilities: bool
    ) -> None:
        self.validator = validator
        self.features = validator.features
        self.available = outputs_of(classes, probabilities)
        self.label_datatype = label_datatype(classes)

    def read(self, payload: Any) -> InferRequest:
        """The rows of an inference request body, or a 4xx ApiError naming the problem."""
        if not isinstance(payload, dict) or "inputs" not in payload or set(payload) - REQUEST_KEYS:
            got = short(sorted(payload)) if isinstance(payload, dict) else type(payload).__name__
            raise bad_request(
                "expected an inference request",
                f"got {got}; send " + '{"inputs": [{"name", "shape", "datatype", "data"}, ...]}'
                " with optional 'id', 'parameters' and 'outputs'",
            )
        request_id = payload.get("id")
        if request_id is not None and not isinstance(request_id, str):
            raise bad_request("'id' must be a string", f"got {short(request_id)}")
        if not isinstance(payload.get("parameters", {}), dict):
            raise bad_request("'parameters' must be an object", short(payload["parameters"]))
        outputs = self._outputs(payload.get("outputs"))
        inputs = payload["inputs"]
        if not isinstance(inputs, list) or not inputs:
            raise bad_request("'inputs' must be a non-empty list of tensors", short(inputs))
        tensors = [_tensor(i, value) for i, value in enumerate(inputs)]
        if len(tensors) == 1 and tensors[0].name not in self.validator.position:
            return InferRequest(self._from_batch_tensor(tensors[0]), outputs, request_id)
        return InferRequest(self._from_feature_tensors(tensors), outputs, request_id)

    def _outputs(self, requested: Any) -> tuple[str, ...]:
        """The outputs asked for; all the model gives if the request names none."""
        if requested is None:
            return self.available
        if (
            not isinstance(requested, list)
            or not requested
            or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in requested)
        ):
            raise bad_request(
                "'outputs' must be a non-empty list of {\"name\": ...} objects",
                f"got {short(requested)}; this model gives {list(self.available)}",
            )
        names = tuple(dict.fromkeys(o["name"] for o in requested))
        if unknown := [n for n in names if n not in self.available]:
            raise bad_request(
                "unknown output",
                f"{short(unknown)}; this model gives {list(self.available)}",
            )
        return names

    def _from_batch_tensor(self, tensor: Tensor) -> Rows:
        """Rows from one [N, F] tensor holding every feature in the signature's order."""
        width = len(self.features)
        if len(tensor.shape) != 2 or tensor.shape[1] != width:
            raise bad_request(
                "bad input tensor shape",
                f"input {short(tensor.name)} is not a feature and has shape "
                f"{short(tensor.shape)}: send one [N, {width}] tensor with the features in the "
                f"order {self.validator.names}, or one tensor per feature, named like it",
            )
        count = tensor.shape[0]
        self.validator.check_count(count)
        _check_data(tensor)
        if unfit := [f for f in self.features if tensor.datatype not in TAKES[f.type]]:
            raise _unfit(tensor, unfit)
        if self.validator.batch.applies:
            array = self.validator.batch.from_values(tensor.values, count)
            if array is not None:
                return array
        values = tensor.values
        return self.validator.value_by_value(
            [values[i * width : (i + 1) * width] for i in range(count)]
        )

    def _from_feature_tensors(self, tensors: list[Tensor]) -> Rows:
        """Rows from one [N] or [N, 1] tensor per feature, each named like its feature."""
        by_name = {t.name: t for t in tensors}
        if len(by_name) != len(tensors):
            twice = sorted(name for name, n in Counter(t.name for t in tensors).items() if n > 1)
            raise bad_request(
                "input named more than once",
                f"input(s) {short(twice)} appear more than once in 'inputs'; send each once",
            )
        self._check_names(by_name)
        for t in tensors:
            if len(t.shape) not in (1, 2) or t.shape[1:] not in ([], [1]):
                raise bad_request(
                    "bad input tensor shape",
                    f"input {short(t.name)} has shape {short(t.shape)}; "
                    "a feature's tensor is [N] or [N, 1]",
                )
        counts = {t.name: t.shape[0] for t in tensors}
        if len(set(counts.values())) != 1:
            raise bad_request("inputs must have the same number of rows", short(counts))
        count = tensors[0].shape[0]
        self.validator.check_count(count)
        for t in tensors:
            _check_data(t)
            feature = self.features[self.validator.position[t.name]]
            if t.datatype not in TAKES[feature.type]:
                raise _unfit(t, [feature])
        if self.validator.batch.applies and len(by_name) == len(self.features):
            columns = [by_name[name].values for name in self.validator.names]
            array = self.validator.batch.from_columns(columns, count)
            if array is not None:
                return array
        rows = zip(*(t.values for t in tensors), strict=True)
        return self.validator.value_by_value([dict(zip(by_name, row, strict=True)) for row in rows])

    def _check_names(self, by_name: dict[str, Tensor]) -> None:
        """422 naming each input that is no feature and each required feature not sent."""
        names = self.validator.names
        problems = []
        if unknown := [name for name in by_name if name not in self.validator.position]:
            problems.append(f"unknown feature(s) {short(unknown)}; expected {names}")
        problems += [
            f"missing feature {f.name!r}"
            for f in self.features
            if f.required and f.name not in by_name
        ]
        if problems:
            raise ApiError(422, "invalid input", problems[:MAX_REPORTED_PROBLEMS])

    def outputs(self, result: Prediction, names: Sequence[str]) -> list[dict[str, Any]]:
        """The output tensors `names` asks for, their data flat in row-major order."""
        count = len(result.predictions)
        tensors = []
        for name in names:
            if name == PREDICT:
                data, shape, datatype = result.predictions, [count], self.label_datatype
            else:
                assert result.probabilities is not None  # the model has them: see `available`
                data = list(chain.from_iterable(result.probabilities))
                width = len(result.probabilities[0]) if count else 0
                shape, datatype = [count, width], "FP64"
            tensors.append({"name": name, "datatype": datatype, "shape": shape, "data": data})
        return tensors


def _tensor(index: int, value: Any) -> Tensor:
    """Input `index` of a request, checked for its keys and their types."""
    where = f"inputs[{index}]"
    if not isinstance(value, dict):
        raise bad_request("bad input tensor", f"{where}: expected an object, got {short(value)}")
    if missing := [key for key in TENSOR_KEYS if key not in value]:
        binary = " (binary tensor data is not supported)" if "data" in missing else ""
        raise bad_request("bad input tensor", f"{where}: missing {missing}{binary}")
    if unknown := sorted(set(value) - {*TENSOR_KEYS, "parameters"}):
        raise bad_request("bad input tensor", f"{where}: unknown key(s) {short(unknown)}")
    name, shape, datatype, data = (value[key] for key in TENSOR_KEYS)
    if not isinstance(name, str):
        raise bad_request("bad input tensor", f"{where}: 'name' must be a string")
    if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
        raise bad_request(
            "bad input tensor shape",
            f"input {short(name)}: shape {short(shape)} is not a list of sizes",
        )
    if datatype not in DATATYPES:
        raise bad_request(
            "unknown datatype",
            f"input {short(name)}: {short(datatype)}; one of {sorted(DATATYPES)}",
        )
    if not isinstance(data, list):
        raise bad_request("bad input tensor", f"input {short(name)}: 'data' must be a list")
    return Tensor(name, shape, datatype, _flattened(name, shape, data))


def _flattened(name: str, shape: list[int], data: list[Any]) -> list[Any]:
    """`data` in row-major order: as sent if flat, else one level per dimension unnested."""
    for size in shape[1:]:
        if not data or type(data[0]) is not list:
            break  # flat (a value that is a list is refused by the value checks)
        if set(map(type, data)) != {list} or set(map(len, data)) != {size}:
            raise bad_request(
                "tensor data does not match its shape", f"input {short(name)}: shape {short(shape)}"
            )
        data = list(chain.from_iterable(data))
    return data


def _check_data(tensor: Tensor) -> None:
    if len(tensor.values) != math.prod(tensor.shape):
        raise bad_request(
            "tensor data does not match its shape",
            f"input {short(tensor.name)}: shape {short(tensor.shape)} holds "
            f"{math.prod(tensor.shape)} values, 'data' has {len(tensor.values)}",
        )


def _unfit(tensor: Tensor, features: Sequence[Feature]) -> ApiError:
    first = features[0]
    return bad_request(
        "datatype does not fit the feature",
        f"input {short(tensor.name)} is {tensor.datatype}; feature {first.name!r} ({first.type}) "
        f"takes {', '.join(TAKES[first.type])}",
    )

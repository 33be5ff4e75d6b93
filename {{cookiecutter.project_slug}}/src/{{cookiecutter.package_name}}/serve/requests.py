"""Requests to rows: every check a prediction request passes, in one place and in order.

1. Framing (`RequestFraming`, ASGI middleware): both Content-Length and Transfer-Encoding is
   400 and the connection closes (RFC 9112 §6.1, request smuggling); a Content-Length over
   MAX_BODY_BYTES is 413 before routing; a body read past it (chunked uploads) is 413 where
   it is read.
2. Headers (`read_json`): Content-Type application/json and no Content-Encoding, else 415.
3. Strict JSON (`parse_json`): no NaN/Infinity, duplicate keys, runaway digits or nesting: 400.
4. Shape (`RowValidator.predict_rows` / `invocation_rows`): the body's format, a non-empty
   batch within MAX_BATCH_SIZE, else 422.
5. Values (`RowValidator`): every feature of the signature with a value of its type, null
   only for a nullable feature, else 422 naming each row and feature.

Validation is hand-written rather than a pydantic model built per signature: it is several
times faster for one row, and every problem is reported with its row and feature.
"""

from __future__ import annotations

import json
import math
import operator
import reprlib
from collections import Counter
from collections.abc import Sequence
from itertools import chain
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError
from .features import Feature

_MISSING = object()  # a feature absent from a record
MAX_REPORTED_PROBLEMS = 20  # enough to fix a request, small enough to read

# The request formats MLflow's scoring server (`mlflow models serve`) accepts on /invocations.
INVOCATION_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")

# The /predict body, for the OpenAPI page (validation itself is RowValidator.predict_rows).
INSTANCES_SCHEMA = {
    "type": "object",
    "required": ["instances"],
    "properties": {
        "instances": {
            "type": "array",
            "items": {"oneOf": [{"type": "object"}, {"type": "array"}]},
            "description": "Rows as {feature: value} objects, or lists in feature order "
            "(see GET /metadata).",
        }
    },
}


class RequestFraming:
    """ASGI middleware: refuse ambiguous framing, and 413 for a body over `max_bytes`.

    A request with both Content-Length and Transfer-Encoding may be framed one way here and
    another by a proxy in front (request smuggling): it is refused and its connection closed,
    so nothing pipelined behind it is read. A Content-Length over the limit is answered at
    once; otherwise the body is counted as it arrives and reading past the limit raises
    ApiError(413) in the endpoint reading it, which the app's error handler renders.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, chunked = _framing(scope)
        # Outside the routes here, so answer directly instead of raising.
        if declared is not None and chunked:
            error = ApiError(
                400,
                "ambiguous message framing",
                "the request has both Content-Length and Transfer-Encoding; send one",
            )
            await JSONResponse(error.body(), error.status, headers=CLOSE)(scope, receive, send)
            return
        if declared is not None and declared > self.max_bytes:
            error = self._too_large(f"Content-Length is {declared} bytes")
            await JSONResponse(error.body(), error.status)(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._too_large(f"the body passed {self.max_bytes} bytes")
            return message

        await self.app(scope, counting_receive, send)

    def _too_large(self, what: str) -> ApiError:
        return ApiError(
            413, "request body too large", f"{what}; MAX_BODY_BYTES is {self.max_bytes}"
        )


# A response header the HTTP server honours by closing the connection once it is sent.
CLOSE = {"connection": "close"}


def _framing(scope: Scope) -> tuple[int | None, bool]:
    """The request's Content-Length (None if absent) and whether Transfer-Encoding is set."""
    length, encoded = None, False
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                length = -1  # the HTTP server rejects a malformed length itself
        elif name == b"transfer-encoding":
            encoded = True
    return length, encoded


async def read_json(request: Request) -> Any:
    """The body of `request` as strict JSON; 415 for another content type or an encoding."""
    content_type = request.headers.get("content-type", "application/json")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(
            415, "unsupported content type", f"got {content_type!r}; send application/json"
        )
    encoding = request.headers.get("content-encoding", "identity")
    if encoding.strip().lower() != "identity":
        raise ApiError(
            415,
            "unsupported content encoding",
            f"got Content-Encoding {encoding!r}; send the JSON body uncompressed",
        )
    return parse_json(await request.body())


# Values echoed in error details are cut short: a request may carry megabytes or deep nesting.
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 3, 60, 60
_SHORT.maxlist = _SHORT.maxdict = 6


def short(value: Any) -> str:
    """`repr(value)`, bounded in length and depth, for error details."""
    return _SHORT.repr(value)


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity literals; they are not JSON and no model wants them.
    raise ValueError(f"{name} is not a valid JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Python keeps the last of duplicate keys silently; which value was meant is anyone's guess.
    record = dict(pairs)
    if len(record) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {short(key)} in an object")
            seen.add(key)
    return record


def parse_json(body: bytes) -> Any:
    """Parse a request body as strict JSON, or raise a 400 ApiError naming the problem.

    Refused: NaN/Infinity literals, duplicate keys, integers past Python's digit limit,
    nesting deeper than the parser's recursion limit, and text that is not UTF-8.

    orjson parses first (several times faster); a body it refuses, or one it might have read
    differently (a duplicate key, which it keeps silently), goes through the strict parser,
    which decides and names the problem.
    """
    if not body:
        raise ApiError(400, "empty body", 'send a JSON object such as {"instances": [...]}')
    try:
        value = orjson.loads(body)
        if not _no_duplicate_keys(body, value):
            return _parse_strictly(body)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return _parse_strictly(body)
    return value


def _no_duplicate_keys(body: bytes, value: Any) -> bool:
    """True if parsing `body` (to `value`) dropped no duplicate key; False if unsure.

    Each colon outside a string separates one key from its value. Re-rendered, `value` has a
    colon per pair it kept, plus those in its strings; the body has one per pair it holds, plus
    those in its strings. Without `\\u` escapes (which could spell a colon) the two counts are
    equal exactly when no pair was dropped. Rendering past 254 levels raises JSONEncodeError.
    """
    if b"\\" in body and b"\\u" in body:  # one-byte search first: it is many times faster
        return False
    return body.count(b":") == orjson.dumps(value).count(b":")


def _parse_strictly(body: bytes) -> Any:
    try:
        return json.loads(body, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except UnicodeDecodeError:
        raise ApiError(400, "malformed JSON", "the body is not UTF-8 text") from None
    except RecursionError:  # the C parser recurses once per nested array or object
        raise ApiError(
            400,
            "JSON nested too deeply",
            "the body nests arrays or objects past the parser's limit; rows need 3 levels",
        ) from None
    except ValueError as error:  # JSONDecodeError, and ints past sys.get_int_max_str_digits()
        raise ApiError(400, "malformed JSON", str(error)) from None


class RowValidator:
    """Checks rows against the signature's named, typed columns."""

    def __init__(self, features: Sequence[Feature], max_batch_size: int) -> None:
        self.features = tuple(features)
        self.names = [f.name for f in self.features]
        self.position = {name: i for i, name in enumerate(self.names)}
        self.max_batch_size = max_batch_size
        # Common case (every feature a double): one quick check per row, not per value. A row
        # of finite numbers for every feature is valid whether or not a feature may be null.
        self.all_double = all(f.type == "double" for f in self.features)
        # A record's values in signature order, in one call (itemgetter needs two names or more).
        self._pick = operator.itemgetter(*self.names) if len(self.names) > 1 else None

    def predict_rows(self, payload: Any) -> list[list[Any]]:
        """Rows from a /predict body: `{"instances": [{feature: value} | [values], ...]}`."""
        if not isinstance(payload, dict) or set(payload) != {"instances"}:
            keys = short(sorted(payload)) if isinstance(payload, dict) else type(payload).__name__
            raise ApiError(
                422,
                "expected an object with one key, 'instances'",
                f"got {keys}; send " + '{"instances": [{"<feature>": value, ...}, ...]}',
            )
        return self.rows(payload["instances"])

    def invocation_rows(self, payload: Any) -> list[list[Any]]:
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

    def split_rows(self, data: Any) -> list[list[Any]]:
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

    def column_rows(self, data: dict[str, Any]) -> list[list[Any]]:
        """Rows from a dict of columns: `{feature: [values...], ...}`."""
        lengths = {len(v) if isinstance(v, list) else -1 for v in data.values()}
        if len(lengths) != 1 or -1 in lengths:
            raise ApiError(
                422, "columns must be lists of equal length", [short(k) for k in sorted(data)]
            )
        records = [
            dict(zip(data, values, strict=True)) for values in zip(*data.values(), strict=True)
        ]
        return self.rows(records)

    def _check_size(self, instances: Any) -> None:
        if not isinstance(instances, list):
            raise ApiError(422, "expected a list of instances", f"got {type(instances).__name__}")
        if not instances:
            raise ApiError(422, "empty batch", "send at least one instance")
        if len(instances) > self.max_batch_size:
            raise ApiError(
                422,
                "batch too large",
                f"{len(instances)} instances; MAX_BATCH_SIZE is {self.max_batch_size}",
            )

    def rows(self, instances: Any) -> list[list[Any]]:
        """Rows from a list of records (`{feature: value}`) or of lists in signature order."""
        self._check_size(instances)
        if self.all_double and (numeric := self._numeric_batch(instances)) is not None:
            return numeric
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

    def _numeric_batch(self, instances: list[Any]) -> list[list[Any]] | None:
        """The rows if every value of every instance is a number the per-value checks accept,
        checked in a few passes over the whole batch; None sends the batch through those
        checks, which then decide and name each problem."""
        width = len(self.names)
        shapes = set(map(type, instances))
        if not (shapes == {list} or shapes == {dict}):
            return None
        if set(map(len, instances)) != {width}:  # a record of `width` known names has them all
            return None
        if shapes == {list}:
            rows: list[Any] = instances
        elif self._pick is None:
            rows = [[record.get(self.names[0], _MISSING)] for record in instances]
        else:
            try:
                rows = list(map(self._pick, instances))
            except KeyError:
                return None
        values = list(chain.from_iterable(rows))
        kinds = set(map(type, values))
        if not kinds <= {float, int}:  # bool, None, str or a nested value: checked one by one
            return None
        try:
            if not math.isfinite(sum(values)):  # a NaN or infinity anywhere carries through
                return None
            if int in kinds and not max(map(abs, values)) < 2**1023:  # the per-value int limit
                return None
        except OverflowError:  # an int past the largest double
            return None
        return rows if shapes == {list} else list(map(list, rows))

    def _from_record(self, i: int, record: dict[str, Any], problems: list[str]) -> list[Any]:
        if self.all_double and len(record) == len(self.names):
            try:
                row = [record[name] for name in self.names]
            except KeyError:
                pass
            else:
                if _all_finite_numbers(row):
                    return row
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
        if self.all_double and _all_finite_numbers(values):
            return values
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
                if abs(value) < 2**1023:  # larger ints overflow a double
                    return float(value)
            elif value is None and feature.nullable:
                return None
        elif kind in ("long", "integer"):
            if type(value) is int:
                return value
            if type(value) is float and value.is_integer():
                return int(value)
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


def _all_finite_numbers(values: list[Any]) -> bool:
    if not all(type(v) is float or type(v) is int for v in values):
        return False
    try:
        return math.isfinite(sum(values))  # NaN or inf anywhere makes the sum non-finite
    except OverflowError:  # a huge int: let the per-value check name it
        return False

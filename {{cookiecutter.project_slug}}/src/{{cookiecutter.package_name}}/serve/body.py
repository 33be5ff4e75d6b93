"""The request body, before any row is read: framing and size, content type, strict JSON.

These are the first three of the checks requests.py lists in order.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError, short


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
        if len(body) > SMALL_BODY and _pairs_at_least(value) == _colons(body):
            return value  # proven whole without rendering it again (see _pairs_at_least)
        if not _no_duplicate_keys(body, value):
            return _parse_strictly(body)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return _parse_strictly(body)
    return value


COLON = ord(":")
# Up to this size, rendering a body again costs a few microseconds: no cheaper proof needed.
SMALL_BODY = 4096
# How deep _pairs_at_least looks, and how many objects of a list it walks one by one (V2's
# tensors); a longer list of objects (records) has its own pairs counted, not their values'.
PAIRS_DEPTH = 8
FEW_OBJECTS = 8


def _pairs_at_least(value: Any, depth: int = 0) -> int:
    """A lower bound of the key-value pairs in parsed `value`, at C speed where it can be.

    Each pair of the body has a colon outside strings, so the body's colons are at least its
    pairs, which are at least the pairs parsed, which are at least this count: if this count
    equals the body's colons, every one of them is equal and no pair was dropped. Counting
    short (nesting this skips, colons inside strings) only sends the body to the slower check.
    """
    if depth > PAIRS_DEPTH:
        return 0
    if type(value) is dict:
        nested = [v for v in value.values() if type(v) is dict or type(v) is list]
        return len(value) + sum(_pairs_at_least(v, depth + 1) for v in nested)
    if type(value) is list and value and type(value[0]) is dict:
        if len(value) <= FEW_OBJECTS:
            return sum(_pairs_at_least(v, depth + 1) for v in value)
        if set(map(type, value)) == {dict}:  # records: their pairs, not what they hold
            return sum(map(len, value))
    return 0


def _no_duplicate_keys(body: bytes, value: Any) -> bool:
    """True if parsing `body` (to `value`) dropped no duplicate key; False if unsure.

    Each colon outside a string separates one key from its value. Re-rendered, `value` has a
    colon per pair it kept, plus those in its strings; the body has one per pair it holds, plus
    those in its strings. Without `\\u` escapes (which could spell a colon) the two counts are
    equal exactly when no pair was dropped. Rendering past 254 levels raises JSONEncodeError.
    """
    if b"\\" in body and b"\\u" in body:  # one-byte search first: it is many times faster
        return False
    return _colons(body) == _colons(orjson.dumps(value))


def _colons(text: bytes) -> int:
    if len(text) <= SMALL_BODY:  # numpy's calls cost more than they save here
        return text.count(b":")
    # numpy compares and counts bytes in vector instructions: ~6x bytes.count's byte loop.
    return int(np.count_nonzero(np.frombuffer(text, np.uint8) == COLON))


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

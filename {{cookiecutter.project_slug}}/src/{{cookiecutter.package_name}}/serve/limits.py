"""Refuse request bodies over MAX_BODY_BYTES before they are buffered in memory."""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError


class BodySizeLimit:
    """ASGI middleware: 413 for a body over `max_bytes`, declared or not (chunked uploads).

    A Content-Length over the limit is answered at once; otherwise the body is counted as it
    arrives and reading past the limit raises ApiError(413) in the endpoint reading it, which
    the app's error handler renders.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            # Outside the routes here, so answer directly instead of raising.
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


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the HTTP server rejects a malformed length itself
    return None

"""Deadlines and a cap for client connections, on top of uvicorn's h11 protocol.

uvicorn closes a connection idle between requests (`timeout_keep_alive`) but sets no deadline
for a request's headers or body, so a client that connects and sends nothing, half the headers
or half the body holds a socket forever. Its `limit_concurrency` answers 503 only once a request
arrives, in plain text. This protocol adds what is missing:

- HEADER_TIMEOUT_SECONDS: from connect (or from the first byte of a later request on a kept-alive
  connection) to the end of the headers; then the connection is closed (with a 408 if part of
  a request arrived).
- BODY_TIMEOUT_SECONDS: from the end of the headers to the end of the body; then a 408 and
  close, and the app sees the client as gone (counted with status 408).
- MAX_CONNECTIONS: a connection over the cap gets a JSON 503 and is closed at once, so a flood
  never reaches the process's file-descriptor limit.

A request h11 cannot parse (a malformed request line or header) gets the app's JSON error body
too, where uvicorn answers in plain text.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import time
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

# Set in a request's ASGI scope when its body did not arrive in time; the app counts it as 408.
BODY_TIMED_OUT = "serve.body_timed_out"
# Files the server opens besides client sockets (listening socket, model, logs, libraries).
SPARE_FILES = 64
REFUSAL_LOG_INTERVAL = 10.0  # seconds: a flood of refused connections logs one line per interval


@dataclass(frozen=True)
class ConnectionLimits:
    """The deadlines and the cap, from ServeSettings."""

    header_timeout: float
    body_timeout: float
    max_connections: int


def raw_response(status: int, reason: str, error: str, detail: str) -> bytes:
    """A complete HTTP/1.1 response closing the connection, with the app's JSON error body."""
    body = json.dumps({"error": error, "detail": detail}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


def make_room_for(max_connections: int) -> str | None:
    """Raise the open-file limit to fit `max_connections`; a warning if the hard limit is lower.

    Past the limit, accepting fails with "Too many open files" and asyncio logs a traceback for
    each attempt: the cap must stay below it.
    """
    needed = max_connections + SPARE_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return None
    raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
    if raised < needed:
        return (
            f"MAX_CONNECTIONS={max_connections} needs {needed} open files but the limit is "
            f"{raised}; lower MAX_CONNECTIONS or raise the limit (ulimit -n)"
        )
    return None


def protocol_for(limits: ConnectionLimits) -> type[H11Protocol]:
    """uvicorn's h11 protocol class with `limits` (pass it as uvicorn.Config(http=...))."""
    return type("LimitedH11Protocol", (LimitedH11Protocol,), {"limits": limits})


class LimitedH11Protocol(H11Protocol):
    """H11Protocol with header and body deadlines and a connection cap (see the module)."""

    limits: ConnectionLimits
    _last_refusal_log = 0.0
    _refused_since_log = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limit_concurrency = None  # the cap is applied per connection, below
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting_for = ""  # "headers" or "body" while a deadline runs

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            self.transport = transport  # connection_lost closes it again
            transport.write(
                raw_response(
                    503,
                    "Service Unavailable",
                    "too many connections",
                    f"MAX_CONNECTIONS={self.limits.max_connections} are open; retry shortly",
                )
            )
            transport.close()
            self._log_refusal()
            return
        super().connection_made(transport)
        self._arm("headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        if not self.transport.is_closing():
            self._follow_request_state()

    def _follow_request_state(self) -> None:
        their_state = self.conn.their_state
        if their_state is h11.SEND_BODY:
            self._arm("body")
        elif their_state is h11.IDLE and (self.cycle is None or self.conn.trailing_data[0]):
            self._arm("headers")  # nothing read yet, or part of the next request
        else:
            self._disarm()  # the request is in, or the connection idles under keep-alive

    def _arm(self, waiting_for: str) -> None:
        if self._deadline is not None and self._waiting_for == waiting_for:
            return
        self._disarm()
        timeout = (
            self.limits.header_timeout if waiting_for == "headers" else self.limits.body_timeout
        )
        self._deadline = self.loop.call_later(timeout, self._expired, waiting_for)
        self._waiting_for = waiting_for

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
            self._waiting_for = ""

    def _expired(self, waiting_for: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if waiting_for == "headers":
            if self.conn.trailing_data[0]:  # part of a request came: say why we hang up
                self.transport.write(
                    self._timeout_response(
                        f"the request headers did not arrive within "
                        f"HEADER_TIMEOUT_SECONDS={self.limits.header_timeout:g}"
                    )
                )
        elif self.cycle is not None and not self.cycle.response_started:
            self.cycle.scope[BODY_TIMED_OUT] = True  # type: ignore[literal-required]
            self.transport.write(
                self._timeout_response(
                    f"the request body did not arrive within "
                    f"BODY_TIMEOUT_SECONDS={self.limits.body_timeout:g}"
                )
            )
            # The app, waiting for the rest of the body, sees the client as gone.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        log.debug("closed a connection waiting for its request %s", waiting_for)
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to a request h11 refused (`msg` is always "Invalid HTTP request
        # received."), as JSON like every other refusal. h11's own reason can echo client bytes.
        self.transport.write(
            raw_response(
                400,
                "Bad Request",
                "invalid HTTP request",
                "the request line or headers are not valid HTTP/1.1",
            )
        )
        self.transport.close()

    @staticmethod
    def _timeout_response(detail: str) -> bytes:
        return raw_response(408, "Request Timeout", "request timeout", detail)

    def _log_refusal(self) -> None:
        cls = LimitedH11Protocol
        cls._refused_since_log += 1
        now = time.monotonic()
        if now - cls._last_refusal_log >= REFUSAL_LOG_INTERVAL:
            log.warning(
                "refusing connections with 503: MAX_CONNECTIONS=%d are open "
                "(%d refused since this line was last logged)",
                self.limits.max_connections,
                cls._refused_since_log,
            )
            cls._last_refusal_log, cls._refused_since_log = now, 0

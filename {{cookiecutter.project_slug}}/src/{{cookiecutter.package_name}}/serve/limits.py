"""What Granian's options leave to the app: the body deadline, and the requests a drain waits on.

Granian (see server.py) closes a connection whose request headers do not arrive within
HEADER_TIMEOUT_SECONDS, and holds at most MAX_CONNECTIONS connections (its backpressure). It
sets no deadline on a request's body: `Guard` gives the app one, and keeps the requests in
flight so that a drain running out of time can cut them.
"""

from __future__ import annotations

import asyncio
import resource
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Set in a request's ASGI scope (to the reason) when its body did not arrive in time: the
# endpoint reading it sees the client as gone, and the app answers a JSON 408 and closes.
BODY_TIMED_OUT = "serve.body_timed_out"
# Files the server opens besides client sockets (listening socket, model, logs, libraries).
SPARE_FILES = 64


class Guard:
    """ASGI wrapper: each request's body must arrive within `body_timeout` of its start.

    When it does not, `receive` answers "http.disconnect" with BODY_TIMED_OUT set in the scope.
    Every request's task is kept while it runs: `cut()` cancels them when the drain ends.
    """

    def __init__(self, app: ASGIApp, body_timeout: float) -> None:
        self.app = app
        self.body_timeout = body_timeout
        self.reason = (
            f"the request body did not arrive within BODY_TIMEOUT_SECONDS={body_timeout:g}"
        )
        self.in_flight: set[asyncio.Task[Any]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        task = asyncio.current_task()
        assert task is not None  # Granian runs each request as an asyncio task
        self.in_flight.add(task)
        try:
            await self.app(scope, self._with_deadline(scope, receive), send)
        finally:
            self.in_flight.discard(task)

    def _with_deadline(self, scope: Scope, receive: Receive) -> Receive:
        deadline = asyncio.get_running_loop().time() + self.body_timeout
        body_done = False

        async def timed_receive() -> Message:
            nonlocal body_done
            if body_done:  # after the body only a disconnect can come: no deadline for it
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                scope[BODY_TIMED_OUT] = self.reason
                return {"type": "http.disconnect"}
            body_done = message["type"] != "http.request" or not message.get("more_body")
            return message

        return timed_receive

    def cut(self) -> int:
        """Cancel every request still running (the drain ran out); how many there were."""
        for task in self.in_flight:
            task.cancel()
        return len(self.in_flight)


def make_room_for(max_connections: int) -> str | None:
    """Raise the open-file limit to fit `max_connections`; a warning if the hard limit is lower.

    Past the limit, accepting a connection fails with "Too many open files": the cap must
    stay below it.
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

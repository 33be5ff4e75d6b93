"""Run the app under Granian, in this process; on SIGTERM, stop accepting, drain, exit 0.

Granian's embedded server (`granian.server.embed.Server`, its documented API for running on
an event loop of one's own) serves the app as tasks of this process's loop: one process, no
worker to spawn, and the signals are ours to handle.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from typing import Any

from fastapi import FastAPI
from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP1Settings
from granian.log import LogLevels
from granian.server.embed import Server

from ..config import ConfigError, ServeSettings
from .app import create_app
from .errors import one_line
from .limits import Guard, make_room_for

log = logging.getLogger(__name__)

BACKLOG = 1024  # connections over MAX_CONNECTIONS wait here, in the kernel, until one closes
CUT_GRACE = 5.0  # seconds for the requests cut by the drain to send their 503
DRAIN_POLL = 0.1  # seconds: how soon a second Ctrl+C cuts the drain short
# Granian's signal thread still holds Python objects for a moment after serve() returns; an
# interpreter exiting under it aborts (a Rust panic, exit 134), seen when the model fails at once.
EXIT_GRACE = 0.2
# Granian's own log lines go through the root logger, in the same format as ours.
GRANIAN_LOGGING: dict[str, Any] = {
    "loggers": {
        "_granian": {"handlers": [], "propagate": True},
        "granian.access": {"handlers": [], "propagate": True},
    }
}


class Serving:
    """The app under Granian: serve until stopped, then drain within DRAIN_SECONDS."""

    def __init__(self, settings: ServeSettings, app: FastAPI, address: str) -> None:
        self.settings = settings
        self.state = app.state.serving
        self.guard = Guard(app, settings.body_timeout_seconds)
        self.server = Server(self.guard, **granian_options(settings, address))
        self._stop: asyncio.Event | None = None
        self._cut_at: float | None = None

    def stop(self) -> None:
        """Fail readiness and begin the drain; a second call skips what is left of it."""
        self.state.begin_shutdown()
        if self._stop is None:
            return
        if self._stop.is_set():
            self._cut_at = 0.0  # a second Ctrl+C: cut the requests in flight now
        self._stop.set()

    async def serve(self, *, handle_signals: bool = True) -> None:
        """Serve until stop() or SIGTERM/SIGINT, then drain; raises what Granian raised."""
        self._stop = asyncio.Event()
        if handle_signals:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self.stop)
        serving = asyncio.create_task(self.server.serve())
        stopping = asyncio.create_task(self._stop.wait())
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if serving.done():  # ended by itself: start-up failed
            stopping.cancel()
            serving.result()
            return
        # Granian closes the listening socket and idle connections, and waits on the others.
        self.server.stop()  # type: ignore[no-untyped-call]  # granian's API is unannotated
        await self._drain(serving)
        await asyncio.sleep(EXIT_GRACE)

    async def _drain(self, serving: asyncio.Task[None]) -> None:
        loop = asyncio.get_running_loop()
        if self._cut_at is None:
            self._cut_at = loop.time() + self.settings.drain_seconds
        while not serving.done() and (left := self._cut_at - loop.time()) > 0:
            await asyncio.wait({serving}, timeout=min(left, DRAIN_POLL))  # stop() may cut it
        if not serving.done():
            log.warning("the drain ended: cutting %d request(s) still running", self.guard.cut())
            await asyncio.wait({serving}, timeout=CUT_GRACE)


def granian_options(settings: ServeSettings, address: str) -> dict[str, Any]:
    """How Granian serves: address, HTTP/1.1 with the header deadline, the cap, logging."""
    return {
        "address": address,
        "port": settings.port,
        "interface": Interfaces.ASGI,
        "http": HTTPModes.http1,
        "websockets": False,
        "backlog": BACKLOG,
        "backpressure": settings.max_connections,  # connections held at once, per worker
        # Headers within HEADER_TIMEOUT_SECONDS of connecting or of the last response, else
        # the connection is closed: the same timer ends an idle kept-alive connection.
        "http1_settings": HTTP1Settings(
            header_read_timeout=max(1, round(settings.header_timeout_seconds * 1000))
        ),
        "log_level": LogLevels(settings.log_level),
        "log_dictconfig": GRANIAN_LOGGING,
        # One line per request costs throughput; /metrics counts requests instead.
        "log_access": settings.log_level == "debug",
    }


def run(settings: ServeSettings) -> int:
    """Serve until SIGTERM; the exit code is 1 if the model could not be loaded, else 0.

    Raises ConfigError if HOST and PORT cannot be listened on.
    """
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if (warning := make_room_for(settings.max_connections)) is not None:
        log.warning(warning)
    address = listenable(settings)  # before the model loads: a bad HOST fails in a second
    failures: list[str] = []

    def on_load_failure(reason: str) -> None:
        failures.append(reason)
        serving.stop()

    app = create_app(settings, on_load_failure=on_load_failure)
    serving = Serving(settings, app, address)
    asyncio.run(serving.serve())
    return 1 if failures else 0


def listenable(settings: ServeSettings) -> str:
    """HOST as the IP address Granian binds, once a socket could be bound there.

    ConfigError naming HOST and PORT if it cannot be had.
    """
    address = f"HOST={settings.host!r} PORT={settings.port}"
    try:
        [(family, kind, proto, _, where), *_] = socket.getaddrinfo(
            settings.host, settings.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (OSError, UnicodeError) as error:  # unresolvable, or not a name at all
        raise ConfigError(f"{address}: not an address to listen on ({one_line(error)})") from None
    with socket.socket(family, kind, proto) as trial:
        try:
            trial.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Granian does
            trial.bind(where)
        except OSError as error:  # not this machine's address, in use, or a privileged port
            raise ConfigError(f"{address}: cannot listen there ({one_line(error)})") from None
    return str(where[0])

"""Run the app under uvicorn; on SIGTERM, stop accepting, drain in-flight requests, exit 0."""

from __future__ import annotations

import logging
import signal
import socket
from types import FrameType

import uvicorn
from fastapi import FastAPI

from ..config import ConfigError, ServeSettings
from .app import create_app
from .connections import ConnectionLimits, make_room_for, protocol_for
from .errors import one_line
from .lifecycle import ServingState


class DrainingServer(uvicorn.Server):
    """uvicorn's server, failing readiness on SIGTERM/SIGINT and exiting 0 after the drain.

    uvicorn closes the listening socket, lets in-flight requests finish within
    `timeout_graceful_shutdown` (DRAIN_SECONDS), then runs the app's shutdown.
    """

    def __init__(self, config: uvicorn.Config, state: ServingState) -> None:
        super().__init__(config)
        self.state = state

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.state.begin_shutdown()
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl+C skips the drain
        else:
            self.should_exit = True
        # Unlike uvicorn, the signal is not re-raised after shutdown: a drained server exits 0.


def run(settings: ServeSettings) -> int:
    """Serve until SIGTERM; the exit code is 1 if the model could not be loaded, else 0.

    Raises ConfigError if HOST and PORT cannot be listened on.
    """
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if (warning := make_room_for(settings.max_connections)) is not None:
        logging.getLogger(__name__).warning(warning)
    failures: list[str] = []

    def on_load_failure(reason: str) -> None:
        failures.append(reason)
        server.should_exit = True

    listening = listen(settings)  # before the model loads: a bad HOST fails in a second
    app = create_app(settings, on_load_failure=on_load_failure)
    server = DrainingServer(uvicorn_config(settings, app), app.state.serving)
    server.run(sockets=[listening])
    return 1 if failures else 0


def listen(settings: ServeSettings) -> socket.socket:
    """A socket bound to HOST:PORT; ConfigError naming both if it cannot be had."""
    address = f"HOST={settings.host!r} PORT={settings.port}"
    try:
        [(family, kind, proto, _, where), *_] = socket.getaddrinfo(
            settings.host, settings.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (OSError, UnicodeError) as error:  # unresolvable, or not a name at all
        raise ConfigError(f"{address}: not an address to listen on ({one_line(error)})") from None
    listening = socket.socket(family, kind, proto)
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        listening.bind(where)
    except OSError as error:  # not this machine's address, in use, or a privileged port
        listening.close()
        raise ConfigError(f"{address}: cannot listen there ({one_line(error)})") from None
    return listening


def uvicorn_config(settings: ServeSettings, app: FastAPI) -> uvicorn.Config:
    """How uvicorn serves `app`: address, logging, drain, keep-alive, deadlines and cap."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # One line per request costs throughput; /metrics counts requests instead.
        access_log=settings.log_level == "debug",
        timeout_graceful_shutdown=settings.drain_seconds,
        timeout_keep_alive=settings.keep_alive_seconds,
        # uvicorn's h11 protocol, plus header and body deadlines and the connection cap.
        http=protocol_for(
            ConnectionLimits(
                header_timeout=settings.header_timeout_seconds,
                body_timeout=settings.body_timeout_seconds,
                max_connections=settings.max_connections,
            )
        ),
        server_header=False,
    )

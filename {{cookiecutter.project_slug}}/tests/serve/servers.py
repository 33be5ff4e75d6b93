"""Start the real server (`<package>-serve`, Granian in one process) for tests that need sockets."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.config import (
    ServeSettings,
)
from {{ cookiecutter.package_name }}.serve.app import (
    create_app,
)
from {{ cookiecutter.package_name }}.serve.model import (
    ServedModel,
)
from {{ cookiecutter.package_name }}.serve.server import (
    Serving,
)

# Generous: a loaded 2-core CI runner may take many seconds to import scikit-learn.
STARTUP_TIMEOUT = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def connect(self, timeout: float = 30) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)


def wait_until_ready(server: Server | ThreadServer, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        assert alive(), f"server exited early:\n{server.output()}"
        try:
            with urllib.request.urlopen(server.url("/readyz"), timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    pytest.fail(f"not ready after {STARTUP_TIMEOUT}s:\n{server.output()}")


@contextmanager
def running_server(model: Path, log: Path, **settings: str) -> Iterator[Server]:
    """`<package>-serve` on a free port serving `model`, with extra settings (env vars)."""
    port = free_port()
    env = {
        **os.environ,
        "MODEL_URI": str(model),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        **settings,
    }
    script = "{{ cookiecutter.package_name }}-serve"
    serve_command = Path(sys.executable).with_name(script)
    with log.open("wb") as sink:
        process = subprocess.Popen([serve_command], env=env, stdout=sink, stderr=sink)
    running = Server(process, port, log)
    try:
        wait_until_ready(running, lambda: process.poll() is None)
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))  # with the traceback, if there is one


@dataclass
class ThreadServer:
    """The app under Granian, configured as `<package>-serve` does, on a thread of the tests."""

    port: int
    records: _Records

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def output(self) -> str:
        return "\n".join(self.records.lines)

    def connect(self, timeout: float = 30) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)


@contextmanager
def server_in_thread(settings: ServeSettings, model: ServedModel) -> Iterator[ThreadServer]:
    """Serve `model` with `settings` (its port is replaced by a free one) until the block ends.

    In-process, so coverage sees the deadlines and the drain; startup takes no model load.
    """
    settings = settings.model_copy(update={"port": free_port(), "host": "127.0.0.1"})
    records = _Records()
    package = create_app.__module__.split(".")[0]
    loggers = [logging.getLogger(name) for name in ("_granian", package)]
    levels = [logger.level for logger in loggers]
    serving = Serving(settings, create_app(settings, model=model), "127.0.0.1")
    for logger in loggers:  # after Serving: Granian configures its logger there
        logger.addHandler(records)
        logger.setLevel(logging.INFO)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=loop.run_until_complete,
        args=(serving.serve(handle_signals=False),),
        name="granian",
        daemon=True,
    )
    thread.start()
    running = ThreadServer(settings.port, records)
    try:
        wait_until_ready(running, thread.is_alive)
        yield running
    finally:
        loop.call_soon_threadsafe(serving.stop)
        thread.join(timeout=60)
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(records)
            logger.setLevel(level)

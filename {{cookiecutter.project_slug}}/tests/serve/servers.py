"""Start the real server (`<package>-serve`, a uvicorn process) for tests that need sockets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

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


def wait_until_ready(server: Server) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        assert server.process.poll() is None, f"server exited early:\n{server.output()}"
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
        wait_until_ready(running)
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)

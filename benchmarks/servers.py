"""The servers benchmarks/ceiling.py loads, started from a bake's own `.venv` and pinned to
SERVER_CPU: the bake's `<package>-serve`, the bare-ASGI ceiling on the bake's uvicorn, and
`mlflow models serve`. Nothing here imports the bake's code: each is a subprocess.
"""

from __future__ import annotations

import functools
import json
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
from typing import Any

from wrk import SERVER_CPU, pinned, process_rss_mb

STARTUP_TIMEOUT = 120.0
BENCHMARKS = Path(__file__).resolve().parent  # holds ceiling_app.py


@dataclass(frozen=True)
class ServerSpec:
    """How to start a server and which path answers 200 once it is ready."""

    command: list[str]
    env: dict[str, str]
    ready_path: str
    port: int


@dataclass(frozen=True)
class Running:
    """A started server: its base URL, cold start (seconds to ready) and process id."""

    base: str
    cold_start: float
    pid: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def example(base: str) -> dict[str, Any]:
    """One input row, as the server's /metadata shows it."""
    with urllib.request.urlopen(base + "/metadata", timeout=10) as response:  # noqa: S310
        row: dict[str, Any] = json.load(response)["example"]["instances"][0]
        return row


@functools.cache
def model_name(base: str) -> str:
    """The name of the model the server at `base` serves (its /metadata), "model" if none."""
    with urllib.request.urlopen(base + "/metadata", timeout=10) as response:  # noqa: S310
        return str(json.load(response).get("model_name", "model"))


def route(base: str, path: str) -> str:
    """`path` with the server's model name where it takes one (V2: /v2/models/{name}/...)."""
    return path.replace("{name}", model_name(base)) if "{name}" in path else path


def answers(url: str, body: bytes) -> bool:
    """Whether POSTing `body` to `url` gets a 200 (an older server has no V2 route)."""
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return bool(response.status == 200)
    except urllib.error.HTTPError:
        return False


def wait_for(url: str, process: subprocess.Popen[bytes], began: float) -> float:
    """Seconds from `began` until `url` answers 200; fails if the process dies first."""
    while time.perf_counter() - began < STARTUP_TIMEOUT:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before {url} was 200")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return time.perf_counter() - began
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.01)
    raise RuntimeError(f"{url} not 200 after {STARTUP_TIMEOUT}s")


@contextmanager
def started(spec: ServerSpec) -> Iterator[Running]:
    """Start a server pinned to SERVER_CPU; stop it on exit."""
    base = f"http://127.0.0.1:{spec.port}"
    began = time.perf_counter()
    process = subprocess.Popen(
        [*pinned(SERVER_CPU), *spec.command],
        env=spec.env,
        stdout=subprocess.DEVNULL,
        stderr=sys.stderr,
    )
    try:
        # taskset execs the command: the pid is the server's own.
        yield Running(base, wait_for(base + spec.ready_path, process, began), process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def child_env(venv: Path, **extra: str) -> dict[str, str]:
    """This environment with the bake's venv first on PATH (mlflow runs `uvicorn` from PATH)."""
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env.update(extra)
    env["PATH"] = os.pathsep.join([str(venv), env.get("PATH", "")])
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # like the image: compiled bytecode, fast imports
    return env


def ceiling(venv: Path) -> ServerSpec:
    """ceiling_app.py on the bake's uvicorn, with the serving server's protocol and loop."""
    port = free_port()
    command = [
        str(venv / "python"), "-m", "uvicorn", "ceiling_app:app", "--app-dir", str(BENCHMARKS),
        "--host", "127.0.0.1", "--port", str(port), "--http", "h11", "--loop", "asyncio",
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    return ServerSpec(command, child_env(venv), "/", port)


def ours(venv: Path, serve_script: str, model: Path) -> ServerSpec:
    """The bake's own entry point on `model`."""
    port = free_port()
    env = child_env(
        venv, MODEL_URI=str(model), HOST="127.0.0.1", PORT=str(port), LOG_LEVEL="warning"
    )
    return ServerSpec([str(venv / serve_script)], env, "/readyz", port)


def mlflow(venv: Path, model: Path) -> ServerSpec:
    """`mlflow models serve` from the bake's venv on the same model folder."""
    port = free_port()
    command = [
        str(venv / "mlflow"), "models", "serve", "-m", str(model), "--env-manager", "local",
        "-h", "127.0.0.1", "-p", str(port),
    ]  # fmt: skip
    # MLflow refuses to deserialize any model (skops included) unless told the source is trusted.
    env = child_env(venv, MLFLOW_ALLOW_PICKLE_DESERIALIZATION="true")
    return ServerSpec(command, env, "/ping", port)


def cold_starts(spec: ServerSpec, times: int) -> list[float]:
    """Cold start of `times` fresh processes (after one unmeasured start that warms caches)."""
    seconds = []
    for attempt in range(times + 1):
        with started(spec) as server:
            if attempt:
                seconds.append(server.cold_start)
        time.sleep(0.5)  # let the port be released
    return seconds


def print_rss(name: str, pid: int) -> None:
    rss = process_rss_mb(pid)
    print(f"{name} RSS after warm-up: " + ("n/a (no /proc)" if rss is None else f"{rss:.0f} MB"))

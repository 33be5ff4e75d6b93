"""Benchmark the server with wrk against the machine's own limit: a bare ASGI app.

`nox -s bench` pins the server to one CPU and wrk to another (taskset, when there are two),
then in one run measures:

- the ceiling: a minimal ASGI app (`ceiling_app`: reads the body, answers a constant) on the
  same uvicorn, protocol and event loop;
- `<package>-serve` on build/model, each figure also as a share of the ceiling: 1-row /predict
  at concurrency 8 and 1 (p50), 100-row /predict at concurrency 8, 1-row /invocations at 8;
- the resident memory (RSS) of each server after its warm-up, and the cold start of ours
  (process start to /readyz 200).

`--mlflow` adds `mlflow models serve` on the same model (its /invocations) under the same
pinning; `--url URL` measures a server that is already running (a container, a cluster, an
older build) against the same ceiling, started here.
Prints figures; it never fails on them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INSTALL_WRK = "install wrk: `sudo apt-get install -y wrk` (Debian/Ubuntu) or `brew install wrk`"
STARTUP_TIMEOUT = 120.0
WARM_UP_SECONDS = 2
CEILING_APP = "{{ cookiecutter.package_name }}.bench:ceiling_app"  # for uvicorn
SERVER_CPU, LOAD_CPU = 0, 1  # the server on one core, wrk on another: they never compete


@dataclass(frozen=True)
class Setting:
    """One load: `rows` rows per request on `endpoint` from `concurrency` connections."""

    rows: int
    concurrency: int
    endpoint: str = "/predict"

    def label(self, name: str, endpoint: str | None = None) -> str:
        return f"{name} {endpoint or self.endpoint} rows={self.rows} c={self.concurrency}"


# What the table measures (1 row at c=1 is read for its p50), then /invocations.
SETTINGS = (Setting(1, 8), Setting(1, 1), Setting(100, 8), Setting(1, 8, "/invocations"))


@dataclass(frozen=True)
class Result:
    """One wrk run."""

    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int

    def line(self, label: str, ceiling: Result | None = None) -> str:
        errors = f"  errors={self.errors}" if self.errors else ""
        share = ""
        if ceiling is not None and ceiling.requests_per_second > 0:
            percent = 100 * self.requests_per_second / ceiling.requests_per_second
            share = f"  {percent:>3.0f}% of ceiling"
        return (
            f"{label:<38} {self.requests_per_second:>9.1f} req/s"
            f"  p50 {self.p50_ms:>7.2f} ms  p99 {self.p99_ms:>7.2f} ms{share}{errors}"
        )


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS_MS[unit]


def parse_wrk(output: str) -> Result:
    """Requests/s, p50, p99 and failed requests from `wrk --latency` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    if not (rps and p50 and p99):
        raise ValueError(f"unexpected wrk output:\n{output}")
    errors = sum(
        int(n)
        for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output)
        + re.findall(r"(?:connect|read|write|timeout) (\d+)", output)
    )
    return Result(float(rps.group(1)), _ms(p50.group(1)), _ms(p99.group(1)), errors)


def wrk_script(body_path: Path) -> str:
    """A wrk Lua script POSTing the JSON file at `body_path`."""
    return (
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"local f = io.open({json.dumps(str(body_path))}, 'rb')\n"
        "wrk.body = f:read('*a')\n"
        "f:close()\n"
    )


def bodies(example: dict[str, Any], rows: int) -> dict[str, bytes]:
    """The same `rows` rows as a /predict body and as an MLflow /invocations body."""
    columns = list(example)
    data = [list(example.values())] * rows
    return {
        "/predict": json.dumps({"instances": [example] * rows}).encode(),
        "/invocations": json.dumps(
            {"dataframe_split": {"columns": columns, "data": data}}
        ).encode(),
    }


def pinned(cpu: int) -> list[str]:
    """The command prefix running a program on `cpu` only; none without taskset or two CPUs."""
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        return []
    return ["taskset", "-c", str(cpu)]


def run_wrk(url: str, body: bytes, concurrency: int, seconds: int, workdir: Path) -> Result:
    """Load `url` with POSTs of `body` from `concurrency` connections for `seconds`."""
    body_path = workdir / "body.json"
    body_path.write_bytes(body)
    script = workdir / "post.lua"
    script.write_text(wrk_script(body_path))
    command = [
        *pinned(LOAD_CPU), "wrk", "--latency", "-t", "1", "-c", str(concurrency),
        "-d", f"{seconds}s", "--timeout", "10s", "-s", str(script), url,
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603
    return parse_wrk(output)


def rss_mb(status: str) -> float:
    """Resident memory in MB from the text of /proc/<pid>/status."""
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    if match is None:
        raise ValueError("no VmRSS line")
    return int(match.group(1)) / 1024


def process_rss_mb(pid: int) -> float | None:
    """Resident memory of process `pid` and its children in MB (mlflow serves from a child);
    None where there is no /proc (macOS)."""
    try:
        own = rss_mb(Path(f"/proc/{pid}/status").read_text())
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (OSError, ValueError):
        return None
    return own + sum(process_rss_mb(int(child)) or 0.0 for child in children)


Scope = dict[str, Any]
Message = dict[str, Any]


async def ceiling_app(
    scope: Scope,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    """The least an ASGI app can do per request: read the body, answer a constant."""
    if scope["type"] == "lifespan":
        while True:
            event = (await receive())["type"]  # lifespan.startup, then lifespan.shutdown
            await send({"type": event + ".complete"})
            if event == "lifespan.shutdown":
                return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")],
        }
    )
    await send({"type": "http.response.body", "body": b"{}"})


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - http URL we build
        return json.load(response)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(url: str, process: subprocess.Popen[bytes], started: float) -> float:
    """Seconds from `started` until `url` answers 200; fails if the process dies first."""
    while time.perf_counter() - started < STARTUP_TIMEOUT:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before {url} was 200")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return time.perf_counter() - started
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.01)
    raise RuntimeError(f"{url} not 200 after {STARTUP_TIMEOUT}s")


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


@contextmanager
def started(spec: ServerSpec) -> Iterator[Running]:
    """Start a server pinned to SERVER_CPU; stop it on exit."""
    base = f"http://127.0.0.1:{spec.port}"
    began = time.perf_counter()
    # Our own entry points, uvicorn or mlflow from this environment, never user input.
    process = subprocess.Popen(  # noqa: S603
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


def child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, **extra}
    # mlflow models serve runs `uvicorn` from PATH: put this environment's scripts first.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # like the image: compiled bytecode, fast imports
    return env


def ceiling_server() -> ServerSpec:
    """`ceiling_app` on uvicorn with the serving server's protocol (h11) and event loop."""
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", CEILING_APP, "--host", "127.0.0.1",
        "--port", str(port), "--http", "h11", "--loop", "asyncio", "--log-level", "warning",
        "--no-access-log",
    ]  # fmt: skip
    return ServerSpec(command, child_env(), "/", port)


def our_server(model: Path) -> ServerSpec:
    port = free_port()
    script = "{{ cookiecutter.package_name }}-serve"
    command = [str(Path(sys.executable).with_name(script))]
    env = child_env(MODEL_URI=str(model), HOST="127.0.0.1", PORT=str(port), LOG_LEVEL="warning")
    return ServerSpec(command, env, "/readyz", port)


def mlflow_server(model: Path) -> ServerSpec:
    port = free_port()
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    command = [
        mlflow, "models", "serve", "-m", str(model), "--env-manager", "local",
        "-h", "127.0.0.1", "-p", str(port),
    ]  # fmt: skip
    # MLflow refuses to deserialize any model (skops included) unless told the source is trusted.
    return ServerSpec(command, child_env(MLFLOW_ALLOW_PICKLE_DESERIALIZATION="true"), "/ping", port)


def cold_starts(spec: ServerSpec, times: int) -> list[float]:
    """Cold start of `times` fresh processes (after one unmeasured start that warms caches)."""
    seconds = []
    for attempt in range(times + 1):
        with started(spec) as server:
            if attempt:
                seconds.append(server.cold_start)
        time.sleep(0.5)  # let the port be released
    return seconds


Results = dict[Setting, Result]


def measure(
    name: str,
    base: str,
    example: dict[str, Any],
    settings: Sequence[Setting],
    seconds: int,
    workdir: Path,
    endpoint: str | None = None,
) -> Results:
    """Run each setting (after a warm-up) and print its line; `endpoint` overrides theirs."""
    warm_up(base, endpoint or "/predict", example, workdir)
    results: Results = {}
    for setting in settings:
        results[setting] = load(base, setting, example, seconds, workdir, endpoint)
        print(results[setting].line(setting.label(name, endpoint)), flush=True)
    return results


def measure_against_ceiling(
    ceiling: str,
    ours: str,
    example: dict[str, Any],
    seconds: int,
    workdir: Path,
    name: str = "ours",
) -> Results:
    """Each setting on the ceiling, then at once on our server: both figures see the same
    machine, which matters when it is shared. Prints both lines, ours with its share."""
    warm_up(ceiling, "/predict", example, workdir)
    warm_up(ours, "/predict", example, workdir)
    results: Results = {}
    for setting in SETTINGS:
        # The ceiling answers every path and body alike; it reads the same body.
        reference = load(ceiling, setting, example, seconds, workdir)
        print(reference.line(setting.label("ceiling")), flush=True)
        results[setting] = load(ours, setting, example, seconds, workdir)
        print(results[setting].line(setting.label(name), reference), flush=True)
    return results


def warm_up(base: str, endpoint: str, example: dict[str, Any], workdir: Path) -> None:
    run_wrk(base + endpoint, bodies(example, 1)[endpoint], 8, WARM_UP_SECONDS, workdir)


def load(
    base: str,
    setting: Setting,
    example: dict[str, Any],
    seconds: int,
    workdir: Path,
    endpoint: str | None = None,
) -> Result:
    path = endpoint or setting.endpoint
    body = bodies(example, setting.rows)[path]
    return run_wrk(base + path, body, setting.concurrency, seconds, workdir)


def print_rss(name: str, pid: int) -> None:
    rss = process_rss_mb(pid)
    print(f"{name} RSS after warm-up: " + ("n/a (no /proc)" if rss is None else f"{rss:.0f} MB"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", type=Path, default=Path("build/model"), help="model folder")
    parser.add_argument("--url", help="measure the server at this base URL instead of starting one")
    parser.add_argument("--mlflow", action="store_true", help="also measure mlflow models serve")
    parser.add_argument("--duration", type=int, default=8, help="seconds per setting (8)")
    parser.add_argument("--starts", type=int, default=3, help="cold starts to measure (3)")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print(f"wrk not found; {INSTALL_WRK}", file=sys.stderr)
        return 2
    if args.url is None and not (args.model / "MLmodel").is_file():
        print(f"no model at {args.model}: run `nox -s train` first", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    # Shared or busy machines skew every figure: say how busy this one was.
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start", flush=True)
    pinning = pinned(SERVER_CPU)
    print(
        f"server on CPU {SERVER_CPU}, wrk on CPU {LOAD_CPU}"
        if pinning
        else "not pinned (needs taskset and two CPUs): server and wrk share the CPUs",
        flush=True,
    )
    try:
        if args.url is not None:
            # Any server (a container, an older build), against this machine's ceiling.
            base = args.url.rstrip("/")
            example = get_json(base + "/metadata")["example"]["instances"][0]
            with started(ceiling_server()) as ceiling:
                measure_against_ceiling(
                    ceiling.base, base, example, args.duration, workdir, name="server"
                )
            return 0
        ours = our_server(args.model)
        starts = cold_starts(ours, args.starts)
        print(
            f"cold start ours (to /readyz 200): median {statistics.median(starts):.2f} s over "
            f"{len(starts)} starts (min {min(starts):.2f}, max {max(starts):.2f})"
        )
        # Both on SERVER_CPU at once; only the one under load uses it.
        with started(ceiling_server()) as ceiling, started(ours) as server:
            example = get_json(server.base + "/metadata")["example"]["instances"][0]
            mine = measure_against_ceiling(
                ceiling.base, server.base, example, args.duration, workdir
            )
            print_rss("ceiling", ceiling.pid)
            print_rss("ours", server.pid)
        invocations, predict = mine[SETTINGS[3]], mine[SETTINGS[0]]
        ratio = invocations.requests_per_second / predict.requests_per_second
        print(f"ours /invocations / /predict throughput, rows=1 c=8: {ratio:.2f}")
        if args.mlflow:
            compare_with_mlflow(args.model, example, mine, args.duration, workdir)
        return 0
    finally:
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
        shutil.rmtree(workdir, ignore_errors=True)


def compare_with_mlflow(
    model: Path, example: dict[str, Any], mine: Results, seconds: int, workdir: Path
) -> None:
    """`mlflow models serve` on the same model, same pinning, same rows on its /invocations."""
    spec = mlflow_server(model)
    print(f"cold start mlflow models serve (to /ping 200): {cold_starts(spec, 1)[0]:.2f} s")
    settings = SETTINGS[:3]
    with started(spec) as server:
        theirs = measure("mlflow", server.base, example, settings, seconds, workdir, "/invocations")
        print_rss("mlflow", server.pid)
    for setting in settings:
        ratio = mine[setting].requests_per_second / theirs[setting].requests_per_second
        print(f"ours / mlflow throughput rows={setting.rows} c={setting.concurrency}: {ratio:.1f}x")


if __name__ == "__main__":
    sys.exit(main())

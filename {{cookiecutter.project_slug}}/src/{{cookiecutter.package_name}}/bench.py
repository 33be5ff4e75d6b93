"""Benchmark the server with wrk: requests/s and p50/p99 latency per batch size and concurrency.

`nox -s bench` starts `<package>-serve` on build/model, measures cold start (process start to
/readyz 200), then loads /predict with 1-row and 100-row bodies at concurrency 1, 8 and 32.
`--mlflow` does the same for `mlflow models serve` on the same model (its /invocations);
`--url URL` measures a server that is already running (a container, a cluster) instead.
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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INSTALL_WRK = "install wrk: `sudo apt-get install -y wrk` (Debian/Ubuntu) or `brew install wrk`"
BATCHES = (1, 100)
CONCURRENCY = (1, 8, 32)
STARTUP_TIMEOUT = 120.0


@dataclass(frozen=True)
class Result:
    """One wrk run."""

    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int

    def line(self, label: str) -> str:
        errors = f"  errors={self.errors}" if self.errors else ""
        return (
            f"{label:<34} {self.requests_per_second:>9.1f} req/s"
            f"  p50 {self.p50_ms:>7.2f} ms  p99 {self.p99_ms:>7.2f} ms{errors}"
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


def run_wrk(url: str, body: bytes, concurrency: int, seconds: int, workdir: Path) -> Result:
    """Load `url` with POSTs of `body` from `concurrency` connections for `seconds`."""
    body_path = workdir / "body.json"
    body_path.write_bytes(body)
    script = workdir / "post.lua"
    script.write_text(wrk_script(body_path))
    command = [
        "wrk", "--latency", "-t", "1", "-c", str(concurrency), "-d", f"{seconds}s",
        "--timeout", "10s", "-s", str(script), url,
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603
    return parse_wrk(output)


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


@contextmanager
def started(
    command: Sequence[str], env: dict[str, str], ready_path: str, port: int
) -> Iterator[tuple[str, float]]:
    """Start a server; yield its base URL and its cold start (seconds to `ready_path` 200)."""
    base = f"http://127.0.0.1:{port}"
    began = time.perf_counter()
    # Our own entry points or mlflow from this environment, never user input.
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=sys.stderr)  # noqa: S603
    try:
        yield base, wait_for(base + ready_path, process, began)
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


def our_server(model: Path) -> tuple[list[str], dict[str, str], str, int]:
    port = free_port()
    script = "{{ cookiecutter.package_name }}-serve"
    command = [str(Path(sys.executable).with_name(script))]
    env = child_env(MODEL_URI=str(model), HOST="127.0.0.1", PORT=str(port), LOG_LEVEL="warning")
    return command, env, "/readyz", port


def mlflow_server(model: Path) -> tuple[list[str], dict[str, str], str, int]:
    port = free_port()
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    command = [
        mlflow, "models", "serve", "-m", str(model), "--env-manager", "local",
        "-h", "127.0.0.1", "-p", str(port),
    ]  # fmt: skip
    # MLflow refuses to deserialize any model (skops included) unless told the source is trusted.
    return command, child_env(MLFLOW_ALLOW_PICKLE_DESERIALIZATION="true"), "/ping", port


def cold_starts(spec: tuple[list[str], dict[str, str], str, int], times: int) -> list[float]:
    """Cold start of `times` fresh processes (after one unmeasured start that warms caches)."""
    command, env, ready_path, port = spec
    seconds = []
    for attempt in range(times + 1):
        with started(command, env, ready_path, port) as (_, cold):
            if attempt:
                seconds.append(cold)
        time.sleep(0.5)  # let the port be released
    return seconds


def load_matrix(
    name: str, base: str, endpoint: str, example: dict[str, Any], seconds: int, workdir: Path
) -> dict[tuple[int, int], Result]:
    results = {}
    run_wrk(base + endpoint, bodies(example, 1)[endpoint], 8, 1, workdir)  # warm-up
    for rows in BATCHES:
        body = bodies(example, rows)[endpoint]
        for concurrency in CONCURRENCY:
            result = run_wrk(base + endpoint, body, concurrency, seconds, workdir)
            results[rows, concurrency] = result
            print(result.line(f"{name} {endpoint} rows={rows} c={concurrency}"), flush=True)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", type=Path, default=Path("build/model"), help="model folder")
    parser.add_argument("--url", help="measure the server at this base URL instead of starting one")
    parser.add_argument("--mlflow", action="store_true", help="also measure mlflow models serve")
    parser.add_argument("--duration", type=int, default=5, help="seconds per setting (5)")
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
    try:
        if args.url is not None:
            base = args.url.rstrip("/")
            example = get_json(base + "/metadata")["example"]["instances"][0]
            load_matrix("server", base, "/predict", example, args.duration, workdir)
            return 0
        ours = our_server(args.model)
        starts = cold_starts(ours, args.starts)
        print(
            f"cold start ours (to /readyz 200): median {statistics.median(starts):.2f} s over "
            f"{len(starts)} starts (min {min(starts):.2f}, max {max(starts):.2f})"
        )
        with started(*ours) as (base, _):
            example = get_json(base + "/metadata")["example"]["instances"][0]
            mine = load_matrix("ours", base, "/predict", example, args.duration, workdir)
        if args.mlflow:
            theirs_spec = mlflow_server(args.model)
            theirs_starts = cold_starts(theirs_spec, 1)
            print(f"cold start mlflow models serve (to /ping 200): {theirs_starts[0]:.2f} s")
            with started(*theirs_spec) as (base, _):
                theirs = load_matrix(
                    "mlflow", base, "/invocations", example, args.duration, workdir
                )
            for rows, concurrency in mine:
                ratio = (
                    mine[rows, concurrency].requests_per_second
                    / theirs[rows, concurrency].requests_per_second
                )
                print(f"ours / mlflow throughput rows={rows} c={concurrency}: {ratio:.1f}x")
        return 0
    finally:
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

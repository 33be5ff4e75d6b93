"""wrk loads and their reports: what each setting sends, how wrk is run and pinned, and the
figures read back (requests/s, p50, p99, errors), plus a process's resident memory and CPU time.

Pure apart from `run_wrk`; the template's unit tests cover the rest (tests/test_ceiling.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INSTALL_WRK = "install wrk: `sudo apt-get install -y wrk` (Debian/Ubuntu) or `brew install wrk`"
SERVER_CPU, LOAD_CPU = 0, 1  # the server on one core, wrk on another: they never compete


@dataclass(frozen=True)
class Setting:
    """One load: `rows` rows per request on `endpoint` from `concurrency` connections."""

    rows: int
    concurrency: int
    endpoint: str = "/predict"

    def label(self, name: str, endpoint: str | None = None) -> str:
        return f"{name} {endpoint or self.endpoint} rows={self.rows} c={self.concurrency}"


# The Open Inference Protocol's infer route; the server's model name goes in (servers.route).
V2_INFER = "/v2/models/{name}/infer"
# What the README's table measures (1 row at c=1 is read for its p50), then /invocations
# (dataframe_split: columns) and V2 (one [N, F] tensor), a server without V2 skips those.
SETTINGS = (
    Setting(1, 8),
    Setting(1, 1),
    Setting(100, 8),
    Setting(1, 8, "/invocations"),
    Setting(100, 8, "/invocations"),
    Setting(1, 8, V2_INFER),
    Setting(100, 8, V2_INFER),
)


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
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if match is None:
        raise ValueError(f"unexpected wrk latency {value!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


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
    """The same `rows` rows as a /predict body (records), an MLflow /invocations body
    (dataframe_split) and a V2 infer body (one [rows, features] FP64 tensor)."""
    columns = list(example)
    data = [list(example.values())] * rows
    tensor = {
        "name": "input-0",
        "shape": [rows, len(columns)],
        "datatype": "FP64",
        "data": [value for row in data for value in row],
    }
    return {
        "/predict": json.dumps({"instances": [example] * rows}).encode(),
        "/invocations": json.dumps(
            {"dataframe_split": {"columns": columns, "data": data}}
        ).encode(),
        V2_INFER: json.dumps({"inputs": [tensor]}).encode(),
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
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
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


def cpu_ticks(stat: str) -> int:
    """User plus system CPU time, in clock ticks, from the text of /proc/<pid>/stat (all the
    process's threads)."""
    fields = stat.rsplit(")", 1)[1].split()  # the command name, in parentheses, may hold spaces
    return int(fields[11]) + int(fields[12])  # utime and stime: fields 14 and 15


def process_cpu_seconds(pid: int) -> float | None:
    """CPU seconds process `pid` has used so far; None where there is no /proc (macOS).

    On a shared machine the CPU a server spends per request holds still where its requests/s
    swing with the load around it.
    """
    try:
        return cpu_ticks(Path(f"/proc/{pid}/stat").read_text()) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None

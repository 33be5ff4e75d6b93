"""The server before and after a change, per model type, against one bare-ASGI ceiling.

    python benchmarks/before_after.py --before REF [--models ...] [--duration 8] [--workdir DIR]

For each model type it bakes the template as it is now and as it was at git ref REF, trains
both, then runs the new bake's `nox -s bench` twice: once on its own server and once, with
`-- --url`, on the old server started on the same CPU. Each run loads a bare ASGI app (the
ceiling) and the server setting by setting, so every figure is also a share of the machine's
limit, measured beside it. Prints the bench lines and one table of both, with ratios.
`--workdir` keeps the bakes (trained, with their nox environments) for a second run.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import common

MODELS = ("logistic_regression", "random_forest", "hist_gradient_boosting")
SERVER_CPU = "0"  # the CPU the project's bench pins servers to; wrk runs on the other
# "ours /predict rows=1 c=8   1234.5 req/s  p50    0.81 ms  p99 ..." and the same for "server".
LINE = re.compile(
    r"^(?:ours|server) (/\w+) rows=(\d+) c=(\d+)\s+([\d.]+) req/s\s+p50\s+([\d.]+) ms"
    r"(?:.*?(\d+)% of ceiling)?",
    re.MULTILINE,
)
RSS = re.compile(r"^(?:ours|server) RSS after warm-up: (\d+) MB", re.MULTILINE)
Figures = dict[tuple[str, int, int], tuple[float, float, str]]


def figures(output: str) -> Figures:
    """(endpoint, rows, concurrency) -> (req/s, p50 ms, share of the ceiling)."""
    return {
        (path, int(rows), int(c)): (float(rps), float(p50), f"{share}%" if share else "")
        for path, rows, c, rps, p50, share in LINE.findall(output)
    }


def bake(template: Path, out: Path, model: str) -> Path:
    """A trained bake of `template` with `model`, reused when `out` already holds one."""
    project = out / common.IMAGE
    if not (project / "build" / "model" / "MLmodel").is_file():
        bake_args = ["--no-input", "-f", "-o", str(out), str(template), f"model={model}"]
        common.sh(["cookiecutter", *bake_args])
        common.sh(["nox", "--non-interactive", "-s", "train"], project)
        common.sh(["nox", "--non-interactive", "-s", "bench", "--install-only"], project)
    return project


def old_template(ref: str, workdir: Path) -> Path:
    """The template at `ref`, extracted from this repository's history."""
    target = workdir / f"template-{ref}"
    if not target.is_dir():
        target.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "-C", str(common.ROOT), "archive", ref],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


@contextlib.contextmanager
def old_server(project: Path) -> Iterator[tuple[str, int]]:
    """The old bake's own server on SERVER_CPU; yields its URL and pid."""
    port = common.waiting.free_port()
    package = next((project / "src").iterdir()).name
    env = {
        **common.env(),
        "MODEL_URI": str(project / "build" / "model"),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": "warning",
    }
    server = project / ".nox" / "bench" / "bin" / f"{package}-serve"
    process = subprocess.Popen(
        ["taskset", "-c", SERVER_CPU, str(server)], env=env, stdout=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        common.waiting.wait_until_ready(
            url + "/readyz", timeout=120, alive=lambda: process.poll() is None, interval=0.1
        )
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def rss_mb(pid: int) -> str:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return f"{int(match.group(1)) / 1024:.0f}" if match else "?"


def report_lines(output: str) -> list[str]:
    keep = ("req/s", "RSS", "cold start", "load average", "runtime")
    return [line for line in output.splitlines() if any(k in line for k in keep)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--before", required=True, help="git ref of the template to compare with")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--duration", default="8", help="seconds per setting (8)")
    parser.add_argument("--starts", default="7", help="cold starts of the new server (7)")
    parser.add_argument("--workdir", type=Path, help="keep bakes here (default: a temp folder)")
    args = parser.parse_args()
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="before-after-"))).resolve()
    before_template = old_template(args.before, workdir)
    rows: list[str] = []
    for model in args.models:
        print(f"== {model}: baking and training both (cached in {workdir})", flush=True)
        new = bake(common.ROOT, workdir / "after" / model, model)
        old = bake(before_template, workdir / "before" / model, model)
        bench = ["nox", "--non-interactive", "-s", "bench", "--", "--duration", args.duration]
        after_out = common.sh([*bench, "--starts", args.starts], new)
        print(f"-- after ({model}):", *report_lines(after_out), sep="\n  ", flush=True)
        with old_server(old) as (url, pid):
            before_out = common.sh([*bench, "--url", url], new)
            old_rss = rss_mb(pid)
        print(f"-- before ({model}):", *report_lines(before_out), sep="\n  ", flush=True)
        after, before = figures(after_out), figures(before_out)
        for key in after:
            if key not in before:
                continue
            (a_rps, a_p50, a_share), (b_rps, b_p50, b_share) = after[key], before[key]
            path, n, c = key
            rows.append(
                f"| {model} | {path} rows={n} c={c} | {b_rps:.0f} ({b_share}), p50 {b_p50:.2f} ms"
                f" | {a_rps:.0f} ({a_share}), p50 {a_p50:.2f} ms | {a_rps / b_rps:.1f}x |"
            )
        new_rss = RSS.search(after_out)
        rows.append(
            f"| {model} | RSS after warm-up | {old_rss} MB | "
            f"{new_rss.group(1) if new_rss else '?'} MB | |"
        )
    print("\n| model | setting | before (share of ceiling) | after (share) | after/before |")
    print("| --- | --- | --- | --- | --- |")
    print(*rows, sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

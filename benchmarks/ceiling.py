"""A bake's server under wrk, against the machine's own limit: a bare ASGI app.

    python benchmarks/ceiling.py [--project PATH] [--mlflow] [--url URL] [--duration 8]

Drives a baked project from outside: `uv sync` gives the bake's own `.venv` its `serve` and
`train` extras, then the bake's `<package>-serve` entry point serves its `build/model`. The server
runs on one CPU and wrk on another (taskset, when there are two), and in one run it measures:

- the ceiling: `ceiling_app.py` on the bake's own uvicorn, protocol (h11) and event loop;
- the bake's server, each figure also as a share of the ceiling: 1-row /predict at concurrency
  8 and 1 (p50), 100-row /predict at concurrency 8, 1-row /invocations at 8;
- the resident memory (RSS) of each server after its warm-up, and the cold start of the bake's
  server (process start to /readyz 200).

`--mlflow` adds `mlflow models serve` on the same model (its /invocations) under the same
pinning; `--url URL` measures a server that is already running (a container, an older build)
against the same ceiling. Without `--project` it bakes the defaults and trains them.
Needs wrk; prints figures and never fails on them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import servers
from wrk import (
    INSTALL_WRK,
    LOAD_CPU,
    SERVER_CPU,
    SETTINGS,
    Result,
    Setting,
    bodies,
    pinned,
    run_wrk,
)

WARM_UP_SECONDS = 2
EXTRAS = ("serve", "train")  # the server, and the mlflow CLI for --mlflow
Results = dict[Setting, Result]


def prepared(project: Path | None) -> Path:
    """`project`, or a fresh default bake, trained."""
    if project is not None:
        return project.resolve()
    import common  # here: it needs the Docker SDK, which only baking uses

    return common.prepared_project(None, sessions=("train",))


def bake_environment(project: Path) -> Path:
    """The bake's own `.venv` with EXTRAS added (from its uv.lock); its bin folder."""
    unset = {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"}  # this venv's, not the bake's
    env = {k: v for k, v in os.environ.items() if k not in unset}
    command = ["uv", "sync", "--frozen", "--inexact", "--no-default-groups", "--quiet"]
    command += [f"--extra={extra}" for extra in EXTRAS]
    subprocess.run(command, cwd=project, env=env, check=True)
    return project / ".venv" / "bin"


def serve_script(project: Path) -> str:
    """The bake's `<package>-serve` entry point, as its pyproject.toml declares it."""
    scripts = tomllib.loads((project / "pyproject.toml").read_text())["project"]["scripts"]
    [name] = [name for name in scripts if name.endswith("-serve")]
    return str(name)


def warm_up(base: str, endpoint: str, example: dict[str, Any], workdir: Path) -> None:
    run_wrk(base + endpoint, bodies(example, 1)[endpoint], 8, WARM_UP_SECONDS, workdir)


def load(
    base: str, setting: Setting, example: dict[str, Any], seconds: int, workdir: Path, path: str
) -> Result:
    body = bodies(example, setting.rows)[path]
    return run_wrk(base + servers.route(base, path), body, setting.concurrency, seconds, workdir)


def measure(
    name: str,
    base: str,
    example: dict[str, Any],
    settings: Sequence[Setting],
    seconds: int,
    workdir: Path,
    endpoint: str,
) -> Results:
    """Run each setting on `endpoint` (after a warm-up) and print its line."""
    warm_up(base, endpoint, example, workdir)
    results: Results = {}
    for setting in settings:
        results[setting] = load(base, setting, example, seconds, workdir, endpoint)
        print(results[setting].line(setting.label(name, endpoint)), flush=True)
    return results


def measure_against_ceiling(
    ceiling: str, ours: str, example: dict[str, Any], seconds: int, workdir: Path, name: str
) -> Results:
    """Each setting on the ceiling, then at once on the server: both figures see the same
    machine, which matters when it is shared. Prints both lines, the server's with its share."""
    warm_up(ceiling, "/predict", example, workdir)
    warm_up(ours, "/predict", example, workdir)
    results: Results = {}
    for setting in SETTINGS:
        # The ceiling answers every path and body alike; it reads the same body.
        path = setting.endpoint
        body = bodies(example, setting.rows)[path]
        if not servers.answers(ours + servers.route(ours, path), body):
            print(f"{name} {path}: not served (skipped)", flush=True)
            continue
        reference = load(ceiling, setting, example, seconds, workdir, path)
        print(reference.line(setting.label("ceiling")), flush=True)
        results[setting] = load(ours, setting, example, seconds, workdir, path)
        print(results[setting].line(setting.label(name), reference), flush=True)
    return results


def measure_url(url: str, venv: Path, seconds: int, workdir: Path) -> None:
    """Any running server (a container, an older build) against this machine's ceiling."""
    base = url.rstrip("/")
    example = servers.example(base)
    with servers.started(servers.ceiling(venv)) as ceiling:
        measure_against_ceiling(ceiling.base, base, example, seconds, workdir, "server")


def measure_ours(
    venv: Path, serve: str, model: Path, args: argparse.Namespace, workdir: Path
) -> tuple[Results, dict[str, Any]]:
    """Cold starts, then the bake's server beside the ceiling; its results and an example row."""
    ours = servers.ours(venv, serve, model)
    starts = servers.cold_starts(ours, args.starts)
    print(
        f"cold start ours (to /readyz 200): median {statistics.median(starts):.2f} s over "
        f"{len(starts)} starts (min {min(starts):.2f}, max {max(starts):.2f})"
    )
    # Both on SERVER_CPU at once; only the one under load uses it.
    with servers.started(servers.ceiling(venv)) as ceiling, servers.started(ours) as server:
        example = servers.example(server.base)
        mine = measure_against_ceiling(
            ceiling.base, server.base, example, args.duration, workdir, "ours"
        )
        servers.print_rss("ceiling", ceiling.pid)
        servers.print_rss("ours", server.pid)
    invocations, predict = mine[SETTINGS[3]], mine[SETTINGS[0]]
    ratio = invocations.requests_per_second / predict.requests_per_second
    print(f"ours /invocations / /predict throughput, rows=1 c=8: {ratio:.2f}")
    return mine, example


def compare_with_mlflow(
    venv: Path, model: Path, example: dict[str, Any], mine: Results, seconds: int, workdir: Path
) -> None:
    """`mlflow models serve` on the same model, same pinning, same rows on its /invocations."""
    spec = servers.mlflow(venv, model)
    print(f"cold start mlflow models serve (to /ping 200): {servers.cold_starts(spec, 1)[0]:.2f} s")
    settings = SETTINGS[:3]
    with servers.started(spec) as server:
        theirs = measure("mlflow", server.base, example, settings, seconds, workdir, "/invocations")
        servers.print_rss("mlflow", server.pid)
    for setting in settings:
        ratio = mine[setting].requests_per_second / theirs[setting].requests_per_second
        print(f"ours / mlflow throughput rows={setting.rows} c={setting.concurrency}: {ratio:.1f}x")


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--project", type=Path, help="a trained bake (default: bake one)")
    parser.add_argument("--url", help="measure the server at this base URL instead of the bake's")
    parser.add_argument("--mlflow", action="store_true", help="also measure mlflow models serve")
    parser.add_argument("--duration", type=int, default=8, help="seconds per setting (8)")
    parser.add_argument("--starts", type=int, default=3, help="cold starts to measure (3)")
    return parser.parse_args(argv)


def cannot_measure(model: Path | None) -> str | None:
    """Why a measurement cannot start (no wrk, or no trained `model`), else None."""
    if shutil.which("wrk") is None:
        return f"wrk not found; {INSTALL_WRK}"
    if model is not None and not (model / "MLmodel").is_file():
        return f"no model at {model}: run `nox -s train` in the project first"
    return None


def load_line(when: str) -> str:
    """How busy the machine is `when`: shared or busy machines skew every figure."""
    return f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} {when}"


def pinning_line() -> str:
    """Where the server and wrk run."""
    if pinned(SERVER_CPU):
        return f"server on CPU {SERVER_CPU}, wrk on CPU {LOAD_CPU}"
    return "not pinned (needs taskset and two CPUs): server and wrk share the CPUs"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if (reason := cannot_measure(None)) is not None:  # before a bake that may take minutes
        print(reason, file=sys.stderr)
        return 2
    project = prepared(args.project)
    model = project / "build" / "model"
    if args.url is None and (reason := cannot_measure(model)) is not None:
        print(reason, file=sys.stderr)
        return 2
    venv = bake_environment(project)
    workdir = Path(tempfile.mkdtemp(prefix="ceiling-"))
    print(load_line("at start"), pinning_line(), sep="\n", flush=True)
    try:
        if args.url is not None:
            measure_url(args.url, venv, args.duration, workdir)
            return 0
        mine, example = measure_ours(venv, serve_script(project), model, args, workdir)
        if args.mlflow:
            compare_with_mlflow(venv, model, example, mine, args.duration, workdir)
        return 0
    finally:
        print(load_line("at the end"))
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

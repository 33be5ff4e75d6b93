"""The bake's app under each candidate server, each beside its own bare-ASGI ceiling, in one run.

    python benchmarks/server_choice.py --project PATH [--duration 8]

Candidates: uvicorn with h11 (the bake's own `<package>-serve`), uvicorn with httptools, and
Granian, the last two running the same app (`--factory <package>.serve.app:from_environment`,
the bake's own factory) with the same limits where the server has them (connection cap,
keep-alive; Granian: header read timeout, backpressure).
httptools and Granian are installed into the bake's `.venv` for this (`uv pip install`).
Each server runs on SERVER_CPU and wrk on LOAD_CPU; every figure of the app is printed with
its share of that server's own ceiling, then a table compares the candidates with uvicorn/h11.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import ceiling
import servers
from wrk import SETTINGS, Result, Setting, process_rss_mb

CANDIDATES = ("uvicorn-h11", "uvicorn-httptools", "granian")
EXTRA_PACKAGES = ("granian", "httptools")
UVICORN = ["--loop", "asyncio", "--log-level", "warning", "--no-access-log", "--no-server-header"]
GRANIAN = ["--interface", "asgi", "--workers", "1", "--http", "1", "--no-ws", "--log-level",
           "warning", "--working-dir", str(servers.BENCHMARKS)]  # fmt: skip


def serve_env(venv: Path, project: Path, port: int) -> dict[str, str]:
    return servers.child_env(
        venv,
        MODEL_URI=str(project / "build" / "model"),
        HOST="127.0.0.1",
        PORT=str(port),
        LOG_LEVEL="warning",
        OMP_NUM_THREADS="1",  # as `<package>-serve` sets it
    )


# What each server adds to run the bare ceiling, and to run the bake's app with its limits.
CEILING_ARGS = {
    "uvicorn-httptools": ["--app-dir", str(servers.BENCHMARKS), "ceiling_app:app"],
    "granian": ["ceiling_app:app"],
}
APP_ARGS = {
    "uvicorn-httptools": ["--limit-concurrency", "1000", "--timeout-keep-alive", "65"],
    "granian": ["--backpressure", "1000", "--http1-header-read-timeout", "10000"],
}


def specs(
    candidate: str, venv: Path, project: Path
) -> tuple[servers.ServerSpec, servers.ServerSpec]:
    """The bare ceiling and the bake's app, both under `candidate`."""
    model = project / "build" / "model"
    if candidate == "uvicorn-h11":
        return servers.ceiling(venv), servers.ours(venv, ceiling.serve_script(project), model)
    if candidate == "granian":
        command = [str(venv / "granian"), *GRANIAN]
    else:
        command = [str(venv / "python"), "-m", "uvicorn", "--http", "httptools", *UVICORN]
    command += ["--host", "127.0.0.1", "--port"]
    bare, app = servers.free_port(), servers.free_port()
    factory = ceiling.serve_script(project).removesuffix("-serve") + ".serve.app:from_environment"
    return (
        servers.ServerSpec(
            [*command, str(bare), *CEILING_ARGS[candidate]], servers.child_env(venv), "/", bare
        ),
        servers.ServerSpec(
            [*command, str(app), *APP_ARGS[candidate], "--factory", factory],
            serve_env(venv, project, app),
            "/readyz",
            app,
        ),
    )


Figures = dict[str, tuple[dict[Setting, Result], dict[Setting, Result], float]]


def measure(
    candidates: Sequence[str], venv: Path, project: Path, seconds: int, workdir: Path
) -> Figures:
    """Every candidate's ceiling and app started at once (only the one under load works), then
    setting by setting each in turn: a shared machine's drift hits them all alike."""
    with ExitStack() as stack:
        running = {
            name: tuple(
                stack.enter_context(servers.started(spec)) for spec in specs(name, venv, project)
            )
            for name in candidates
        }
        example = servers.example(running[candidates[0]][1].base)
        for bare, app in running.values():
            ceiling.warm_up(bare.base, "/predict", example, workdir)
            ceiling.warm_up(app.base, "/predict", example, workdir)
        figures: Figures = {name: ({}, {}, 0.0) for name in candidates}
        for setting in SETTINGS:
            for name, (bare, app) in running.items():
                own, ours, _ = figures[name]
                path = setting.endpoint
                own[setting] = ceiling.load(bare.base, setting, example, seconds, workdir, path)
                print(own[setting].line(setting.label(f"{name} ceiling")), flush=True)
                ours[setting] = ceiling.load(app.base, setting, example, seconds, workdir, path)
                print(ours[setting].line(setting.label(f"{name} ours"), own[setting]), flush=True)
        for name, (bare, app) in running.items():
            rss = process_rss_mb(app.pid) or 0.0  # with its children: Granian serves from one
            bare_rss = process_rss_mb(bare.pid) or 0.0
            print(f"{name} RSS after warm-up: ceiling {bare_rss:.0f} MB, ours {rss:.0f} MB")
            figures[name] = (*figures[name][:2], rss)
    return figures


def cell(ours: Result, own: Result) -> str:
    """req/s and the share of the server's own ceiling."""
    share = 100 * ours.requests_per_second / own.requests_per_second
    return f"{ours.requests_per_second:.0f} ({share:.0f}%)"


def table(figures: Figures) -> None:
    """One row per candidate; ratios against the app under uvicorn/h11, from this run."""
    base = figures.get("uvicorn-h11")
    print(
        "\n| server | ceiling 1 row c=8 | ours 1 row c=8 (share) | ours 100 rows c=8 (share) "
        "| ours p50 c=1 | ours RSS | ours vs uvicorn-h11: 1 row, 100 rows |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    one, single, hundred = SETTINGS[0], SETTINGS[1], SETTINGS[2]
    for name, (own, ours, rss) in figures.items():
        ratios = "?"
        if base is not None:
            ratios = ", ".join(
                f"{ours[s].requests_per_second / base[1][s].requests_per_second:.2f}x"
                for s in (one, hundred)
            )
        print(
            f"| {name} | {own[one].requests_per_second:.0f} | {cell(ours[one], own[one])} "
            f"| {cell(ours[hundred], own[hundred])} | {ours[single].p50_ms:.2f} ms "
            f"| {rss:.0f} MB | {ratios} |"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--project", type=Path, required=True, help="a trained bake")
    parser.add_argument("--duration", type=int, default=8, help="seconds per setting (8)")
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=CANDIDATES)
    args = parser.parse_args(argv)
    project = args.project.resolve()
    venv = ceiling.bake_environment(project)
    subprocess.run(
        ["uv", "pip", "install", "--quiet", "--python", str(venv / "python"), *EXTRA_PACKAGES],
        check=True,
    )
    workdir = Path(tempfile.mkdtemp(prefix="server-choice-"))
    table(measure(args.candidates, venv, project, args.duration, workdir))
    return 0


if __name__ == "__main__":
    sys.exit(main())

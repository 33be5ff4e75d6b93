"""The bake's server beside the same app under other servers, each beside its own bare-ASGI
ceiling, in one run.

    python benchmarks/server_choice.py --project PATH [--duration 8]

Candidates: `ours`, the bake's own `<package>-serve` (Granian embedded in one process, with its
header deadline, connection cap, body deadline and drain); the same app
(`--factory <package>.serve.app:from_environment`, the bake's own factory) under uvicorn with h11
and with httptools (connection cap, keep-alive through uvicorn's options), and under Granian's
CLI (`granian-cli`: a main process spawning one worker process, header read timeout and
backpressure). The ceilings: `ceiling_app.py` on uvicorn/h11 (the fixed yardstick of earlier
rounds), on uvicorn/httptools, and on Granian's CLI (for `ours` and `granian-cli`).
httptools is installed into the bake's `.venv` for this (`uv pip install`); uvicorn is there
with the `train` extra's MLflow, and named too. Each server runs on SERVER_CPU and wrk on
LOAD_CPU; every figure of the app is printed with its share of that server's own ceiling, then a
table compares the candidates with the app under uvicorn/h11.
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

CANDIDATES = ("ours", "uvicorn-h11", "uvicorn-httptools", "granian-cli")
EXTRA_PACKAGES = ("httptools", "uvicorn")
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


# The limits `<package>-serve` sets, through each server's own options where it has them.
UVICORN_LIMITS = ["--limit-concurrency", "256", "--timeout-keep-alive", "65"]
APP_ARGS = {
    "uvicorn-h11": ["--http", "h11", *UVICORN_LIMITS],
    "uvicorn-httptools": ["--http", "httptools", *UVICORN_LIMITS],
    "granian-cli": ["--backpressure", "256", "--http1-header-read-timeout", "10000"],
}


def granian_ceiling(venv: Path) -> servers.ServerSpec:
    """ceiling_app.py under Granian's CLI: the bare ceiling of Granian's HTTP stack."""
    port = servers.free_port()
    command = [str(venv / "granian"), *GRANIAN, "--host", "127.0.0.1", "--port", str(port)]
    return servers.ServerSpec([*command, "ceiling_app:app"], servers.child_env(venv), "/", port)


def uvicorn_ceiling(candidate: str, venv: Path) -> servers.ServerSpec:
    if candidate == "uvicorn-h11":
        return servers.ceiling(venv)
    port = servers.free_port()
    command = [str(venv / "python"), "-m", "uvicorn", "--http", "httptools", *UVICORN,
               "--host", "127.0.0.1", "--port", str(port),
               "--app-dir", str(servers.BENCHMARKS), "ceiling_app:app"]  # fmt: skip
    return servers.ServerSpec(command, servers.child_env(venv), "/", port)


def specs(
    candidate: str, venv: Path, project: Path
) -> tuple[servers.ServerSpec, servers.ServerSpec]:
    """The bare ceiling and the bake's app, both under `candidate`."""
    model = project / "build" / "model"
    script = ceiling.serve_script(project)
    if candidate == "ours":
        return granian_ceiling(venv), servers.ours(venv, script, model)
    if candidate == "granian-cli":
        bare = granian_ceiling(venv)
        command = [str(venv / "granian"), *GRANIAN]
    else:
        bare = uvicorn_ceiling(candidate, venv)
        command = [str(venv / "python"), "-m", "uvicorn", *UVICORN]
    port = servers.free_port()
    factory = script.removesuffix("-serve") + ".serve.app:from_environment"
    command += ["--host", "127.0.0.1", "--port", str(port), *APP_ARGS[candidate]]
    app = servers.ServerSpec(
        [*command, "--factory", factory], serve_env(venv, project, port), "/readyz", port
    )
    return bare, app


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
            rss = process_rss_mb(app.pid) or 0.0  # with its children: Granian's CLI has one
            bare_rss = process_rss_mb(bare.pid) or 0.0
            print(f"{name} RSS after warm-up: ceiling {bare_rss:.0f} MB, ours {rss:.0f} MB")
            figures[name] = (*figures[name][:2], rss)
    return figures


def cell(ours: Result, own: Result) -> str:
    """req/s and the share of the server's own ceiling."""
    share = 100 * ours.requests_per_second / own.requests_per_second
    return f"{ours.requests_per_second:.0f} ({share:.0f}%)"


def table(figures: Figures) -> None:
    """One row per candidate; ratios against the app under uvicorn/h11, from this run.

    `ours` is measured against Granian's ceiling, each other candidate against its own server's.
    """
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

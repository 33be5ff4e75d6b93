"""What input-drift tracking costs the request path: the bake's server with and without it.

    python benchmarks/drift_cost.py [--project PATH] [--duration 5] [--rounds 4]

Training records each feature's reference bins in the exported model's MLmodel metadata
(`drift_reference`); the server tracks drift for a model that has them and nothing for one
that has none. This starts the bake's own `<package>-serve` (from its `.venv`, like ceiling.py)
twice on the same CPU: on `build/model`, and on a copy of it whose MLmodel has no
`drift_reference`. Before timing, each server's /metrics shows whether it scores drift (one
must, the other must not). Then, for 1 and 100 rows at concurrency 1 and 8 on /predict, wrk
loads the two in turn, `--rounds` times each and in alternating order, so both see the same
machine state. Prints each run and a table of req/s with and without drift, the median of
the rounds' ratios and their range, the same for the server's CPU time per request (from
/proc: it holds still on a busy shared machine where req/s swing), and the p50s. Without
`--project` it bakes the defaults and trains them. Needs wrk and pyyaml.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ceiling
import servers
import yaml
from wrk import Result, Setting, bodies, process_cpu_seconds, run_wrk

SETTINGS = (Setting(1, 1), Setting(1, 8), Setting(100, 1), Setting(100, 8))
ON, OFF = "drift on", "drift off"
DRIFT_KEY = "drift_reference"
# The gauge a drift-tracking server exports, once per referenced feature.
DRIFT_SERIES = re.compile(r"^feature_drift_psi\{", re.MULTILINE)


@dataclass(frozen=True)
class Run:
    """One wrk run on one server, and the server's CPU time per request in it (None without
    /proc): on a busy shared machine, CPU per request holds still where requests/s swing."""

    result: Result
    cpu_us: float | None


Runs = dict[Setting, dict[str, list[Run]]]


def without_drift_reference(mlmodel: str) -> str:
    """The text of an MLmodel file with its metadata's `drift_reference` removed."""
    document = yaml.safe_load(mlmodel)
    metadata = document.get("metadata") or {}
    if DRIFT_KEY not in metadata:
        raise ValueError(f"the model has no {DRIFT_KEY}: train it with a template that records it")
    del metadata[DRIFT_KEY]
    return str(yaml.safe_dump(document, sort_keys=False))


def untracked_copy(model: Path, target: Path) -> Path:
    """A copy of the exported `model` folder that the server tracks no drift for."""
    shutil.copytree(model, target)
    mlmodel = target / "MLmodel"
    mlmodel.write_text(without_drift_reference(mlmodel.read_text()))
    return target


def orders(rounds: int) -> list[tuple[str, str]]:
    """Which server goes first in each round: alternating, so neither always loads a warmer
    or a cooler machine."""
    return [(ON, OFF) if i % 2 == 0 else (OFF, ON) for i in range(rounds)]


def drift_series(base: str) -> int:
    """How many drift scores the server at `base` exports on /metrics (after enough rows)."""
    with urllib.request.urlopen(base + "/metrics", timeout=10) as response:  # noqa: S310
        return len(DRIFT_SERIES.findall(response.read().decode()))


def _median_ratio(on: list[float], off: list[float]) -> str:
    """The median of paired with/without ratios and their range: a round's two runs are
    adjacent in time, so a burst of load from elsewhere skews both or neither."""
    ratios = [a / b for a, b in zip(on, off, strict=True) if b]
    if not ratios:
        return "n/a | n/a"
    return f"{statistics.median(ratios):.3f} | {min(ratios):.3f}-{max(ratios):.3f}"


def summary(runs: Runs) -> list[str]:
    """A Markdown table per setting: mean req/s with and without drift, the median of the
    rounds' req/s ratios and their range, the same for the server's CPU per request, and the
    median p50s."""
    lines = [
        "| /predict | req/s with drift | without | with/without (median) | range "
        "| CPU us/request with | without | with/without (median) | range | p50 with | without |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for setting, by_server in runs.items():
        on, off = by_server[ON], by_server[OFF]
        on_rps = [run.result.requests_per_second for run in on]
        off_rps = [run.result.requests_per_second for run in off]
        on_cpu = [run.cpu_us for run in on if run.cpu_us is not None]
        off_cpu = [run.cpu_us for run in off if run.cpu_us is not None]
        cpu = (
            f"{statistics.mean(on_cpu):.0f} | {statistics.mean(off_cpu):.0f} | "
            f"{_median_ratio(on_cpu, off_cpu)}"
            if on_cpu and len(on_cpu) == len(off_cpu)
            else "n/a | n/a | n/a | n/a"
        )
        on_p50 = statistics.median(run.result.p50_ms for run in on)
        off_p50 = statistics.median(run.result.p50_ms for run in off)
        lines.append(
            f"| rows={setting.rows} c={setting.concurrency} | {statistics.mean(on_rps):.0f} "
            f"| {statistics.mean(off_rps):.0f} | {_median_ratio(on_rps, off_rps)} | {cpu} "
            f"| {on_p50:.2f} ms | {off_p50:.2f} ms |"
        )
    return lines


def cpu_per_request(
    before: float | None, after: float | None, result: Result, seconds: int
) -> float | None:
    """The server's CPU microseconds per request over one run of `seconds`."""
    if before is None or after is None or not result.requests_per_second:
        return None
    return (after - before) / (result.requests_per_second * seconds) * 1e6


def check_tracking(bases: dict[str, str], example: dict[str, Any], workdir: Path) -> None:
    """Load both servers past the drift window's minimum, then check that the one on the
    original model scores drift and the other does not: else the comparison means nothing."""
    for base in bases.values():  # also the warm-up of both sizes
        for rows in (1, 100):
            run_wrk(base + "/predict", bodies(example, rows)["/predict"], 8, 2, workdir)
    on, off = drift_series(bases[ON]), drift_series(bases[OFF])
    print(f"drift scores on /metrics: {on} with drift, {off} without", flush=True)
    if not on or off:
        raise SystemExit("the two servers do not differ in drift tracking: nothing to compare")


def measure(
    bases: dict[str, str], pids: dict[str, int], example: dict[str, Any], seconds: int, rounds: int
) -> Runs:
    """Every setting on both servers, `rounds` times each, in alternating order."""
    workdir = Path(tempfile.mkdtemp(prefix="drift-cost-"))
    try:
        check_tracking(bases, example, workdir)
        runs: Runs = {}
        for setting in SETTINGS:
            body = bodies(example, setting.rows)["/predict"]
            runs[setting] = {ON: [], OFF: []}
            for order in orders(rounds):
                for name in order:
                    before = process_cpu_seconds(pids[name])
                    result = run_wrk(
                        bases[name] + "/predict", body, setting.concurrency, seconds, workdir
                    )
                    cpu = cpu_per_request(before, process_cpu_seconds(pids[name]), result, seconds)
                    runs[setting][name].append(Run(result, cpu))
                    used = "" if cpu is None else f"  CPU {cpu:.0f} us/request"
                    print(result.line(setting.label(name)) + used, flush=True)
        return runs
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--project", type=Path, help="a trained bake (default: bake one)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per run (5)")
    parser.add_argument("--rounds", type=int, default=4, help="runs per server and setting (4)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if (reason := ceiling.cannot_measure(None)) is not None:  # before a bake of minutes
        print(reason, file=sys.stderr)
        return 2
    project = ceiling.prepared(args.project)
    model = project / "build" / "model"
    if (reason := ceiling.cannot_measure(model)) is not None:
        print(reason, file=sys.stderr)
        return 2
    venv, serve = ceiling.bake_environment(project), ceiling.serve_script(project)
    scratch = Path(tempfile.mkdtemp(prefix="drift-model-"))
    try:
        untracked = untracked_copy(model, scratch / "model")
        print(ceiling.load_line("at start"), ceiling.pinning_line(), sep="\n", flush=True)
        # Both on SERVER_CPU at once; only the one under load uses it.
        with (
            servers.started(servers.ours(venv, serve, model)) as tracked,
            servers.started(servers.ours(venv, serve, untracked)) as plain,
        ):
            bases, pids = {ON: tracked.base, OFF: plain.base}, {ON: tracked.pid, OFF: plain.pid}
            example = servers.example(tracked.base)
            runs = measure(bases, pids, example, args.duration, args.rounds)
        print(*summary(runs), sep="\n")
        print(ceiling.load_line("at the end"))
        return 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

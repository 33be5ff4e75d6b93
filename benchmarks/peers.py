"""The bake's server beside its peers, on the same trained model and the same rows, in one run.

    python benchmarks/peers.py --project BAKE [--duration 8] [--venv DIR] [--workdir DIR]
                               [--mlserver-workers 0]

Servers, each started as a subprocess on SERVER_CPU with wrk on LOAD_CPU (benchmarks/wrk.py):
- the bare-ASGI ceiling and ours (the bake's `<package>-serve` on `build/model`), from the
  bake's own `.venv` as benchmarks/ceiling.py starts them; ours is loaded on `/predict` with
  `instances` records and, when the bake answers `GET /v2/models/{name}`, on its V2 `infer` too
  (one [N, F] tensor, as mlserver-onnx is sent);
- Seldon MLServer with its scikit-learn runtime (the bake's model dumped as joblib; the rows as
  one V2 tensor per column, decoded as a DataFrame) and with a small onnxruntime runtime
  (peers_runtime.py) on the bake's `model.onnx` (one [N, F] V2 tensor);
- BentoML serving the joblib model (peers_bento.py; the `/predict` body).
The peers run from a separate venv (peers_servers.py: exact versions, the bake's runtimes) and
answer what ours answers: labels and a classifier's probabilities. MLServer infers in its server
process (`--mlserver-workers 0`; its default, 1, adds a worker process on the same pinned CPU).
Before any timing, every server answers the bake's example rows and must give our labels (else
exit 1). Then each load (1 and 100 rows, concurrency 1 and 8) runs on every server in turn, so a
shared machine's drift hits them alike, and one table prints req/s, p50, the share of the
ceiling, RSS after the loads and the ours/peer ratios. Prints figures; never fails on them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
from collections.abc import Sequence
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import ceiling
import peers_protocols as protocols
import peers_servers
import servers
from peers_check import check_rows, disagreements, request
from peers_protocols import Contender
from peers_table import table
from wrk import LOAD_CPU, SERVER_CPU, Result, Setting, pinned, process_rss_mb, run_wrk

LOADS = (Setting(1, 1), Setting(1, 8), Setting(100, 1), Setting(100, 8))
WARM_UP_SECONDS = 2
Figures = dict[str, dict[Setting, Result]]

OURS = Contender(
    protocols.OURS, "/predict", "/predict", protocols.instances, protocols.predictions, False
)
CEILING = Contender(
    protocols.CEILING,
    "/predict body",
    "/predict",
    protocols.instances,
    protocols.predictions,
    False,
)


def peer_contenders(classifier: bool) -> tuple[Contender, ...]:
    """The peers, each answering what ours answers: labels and, for a classifier, the
    probabilities (MLServer's scikit-learn runtime is asked for both; the others give both)."""
    outputs = ("predict", "predict_proba") if classifier else ()
    return (
        Contender(
            "mlserver-sklearn",
            "V2 columns (pd)",
            protocols.V2_INFER,
            partial(protocols.v2_columns, outputs=outputs),
            protocols.v2_predict,
        ),
        Contender(
            "mlserver-onnx",
            "V2 tensor",
            protocols.V2_INFER,
            protocols.v2_tensor,
            protocols.v2_predict,
        ),
        Contender(
            "bentoml", "JSON instances", "/predict", protocols.instances, protocols.predictions
        ),
    )


def ours_v2(base: str, name: str) -> Contender | None:
    """Ours over V2, when the bake serves `GET /v2/models/{name}`: the rows as one [N, F]
    tensor (a name no feature has), the body mlserver-onnx takes, so the two compare alike."""
    try:
        request(f"{base}/v2/models/{name}")
    except (RuntimeError, urllib.error.URLError):
        return None
    path = f"/v2/models/{name}/infer"
    tensor = protocols.v2_tensor
    return Contender(protocols.OURS_V2, "V2 tensor", path, tensor, protocols.v2_predict, False)


def measure(
    bases: dict[str, str], contenders: Sequence[Contender], example: dict[str, Any], args: Any
) -> Figures:
    """Warm each server up, then each load on every server in turn; prints each line."""
    columns, row = list(example), list(example.values())
    for c in contenders:
        run_wrk(bases[c.name] + c.path, c.body(columns, [row]), 8, WARM_UP_SECONDS, args.workdir)
    figures: Figures = {c.name: {} for c in contenders}
    for load in LOADS:
        for c in contenders:
            body = c.body(columns, [row] * load.rows)
            result = run_wrk(
                bases[c.name] + c.path, body, load.concurrency, args.duration, args.workdir
            )
            figures[c.name][load] = result
            label = f"{c.name} {c.protocol} rows={load.rows} c={load.concurrency}"
            reference = figures[CEILING.name].get(load) if c is not CEILING else None
            print(result.line(label, reference), flush=True)
    return figures


def how_it_ended(pid: int) -> str | None:
    """How a server's process ended, or None while it runs (another user of a shared machine
    may end it); it stays waitable for servers.started. None where os.waitid is missing."""
    waitid = getattr(os, "waitid", None)  # not on macOS
    info = waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) if waitid else None
    if info is None:
        return None
    if info.si_code == os.CLD_EXITED:
        return f"exited with {info.si_status}"
    return f"was killed by signal {info.si_status}"


def specs(
    project: Path, bake_bin: Path, peers_bin: Path, args: Any
) -> dict[str, servers.ServerSpec]:
    """Every server to start, by contender name; mlserver-onnx only where the bake exported
    an ONNX twin."""
    model = project / "build" / "model"
    joblib_file = peers_servers.export_joblib(peers_bin, model, args.workdir / "model.joblib")
    found = {
        CEILING.name: servers.ceiling(bake_bin),
        OURS.name: servers.ours(bake_bin, ceiling.serve_script(project), model),
        "mlserver-sklearn": peers_servers.mlserver(
            peers_bin,
            args.workdir / "mlserver-sklearn",
            peers_servers.SKLEARN_RUNTIME,
            joblib_file,
            args.mlserver_workers,
        ),
        "bentoml": peers_servers.bentoml(peers_bin, joblib_file, args.workdir / "bentoml"),
    }
    if (model / "model.onnx").is_file():
        found["mlserver-onnx"] = peers_servers.mlserver(
            peers_bin,
            args.workdir / "mlserver-onnx",
            peers_servers.ONNX_RUNTIME,
            model / "model.onnx",
            args.mlserver_workers,
        )
    else:
        print("no model.onnx in the bake's export: mlserver-onnx left out", flush=True)
    return found


def compare(project: Path, bake_bin: Path, peers_bin: Path, args: Any) -> int:
    """Start every server, check their answers agree, load them, print the table."""
    with ExitStack() as stack:
        running = {
            name: stack.enter_context(servers.started(spec))
            for name, spec in specs(project, bake_bin, peers_bin, args).items()
        }
        for name, server in running.items():
            print(f"cold start {name}: {server.cold_start:.2f} s", flush=True)
        bases = {name: server.base for name, server in running.items()}
        metadata = request(bases[OURS.name] + "/metadata")
        v2 = ours_v2(bases[OURS.name], metadata["model_name"])
        if v2 is not None:
            bases[v2.name] = bases[OURS.name]
        peers = [p for p in peer_contenders("classes" in metadata) if p.name in bases]
        contenders = [CEILING, OURS, *([v2] if v2 else []), *peers]
        columns, rows = check_rows(project / "build" / "model")
        problems = disagreements(bases, contenders, columns, rows)
        if problems:
            print(f"servers disagree with ours on {len(rows)} rows:", *problems, sep="\n  ")
            return 1
        checked = ", ".join(c.name for c in contenders[2:])
        print(f"{checked}: the same labels as ours on {len(rows)} rows", flush=True)
        try:
            figures = measure(bases, contenders, servers.example(bases[OURS.name]), args)
        except subprocess.CalledProcessError as error:  # wrk found no server on a port
            ended = {name: how_it_ended(server.pid) for name, server in running.items()}
            said = f"{error.stdout or ''}{error.stderr or ''}".strip()[-500:]
            print(f"wrk failed: {said or error}", file=sys.stderr)
            print(*(f"{n} {how}" for n, how in ended.items() if how), sep="\n", file=sys.stderr)
            return 1
        rss = {name: process_rss_mb(server.pid) for name, server in running.items()}
    print("", *table(contenders, figures, rss, LOADS), sep="\n")
    return 0


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--project", type=Path, required=True, help="a trained bake")
    parser.add_argument("--duration", type=int, default=8, help="seconds per load (8)")
    parser.add_argument("--venv", type=Path, help="the peers venv (default: WORKDIR/venv)")
    parser.add_argument("--workdir", type=Path, help="files and servers' folders (default: temp)")
    parser.add_argument(
        "--mlserver-workers",
        type=int,
        default=0,
        help="MLServer's parallel_workers (0: inference in its server process, its fastest on "
        "one pinned CPU; 1 is its default)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    project = args.project.resolve()
    if (reason := ceiling.cannot_measure(project / "build" / "model")) is not None:
        print(reason, file=sys.stderr)
        return 2
    temporary = args.workdir is None
    args.workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="peers-"))).resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)
    try:
        bake_bin = ceiling.bake_environment(project)
        peers_bin = peers_servers.install((args.venv or args.workdir / "venv").resolve(), bake_bin)
        # Shared or busy machines skew every figure: say how busy this one was.
        print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start", flush=True)
        print(f"MLServer parallel_workers={args.mlserver_workers}", flush=True)
        placement = (
            f"servers (and their child processes) on CPU {SERVER_CPU}, wrk on CPU {LOAD_CPU}"
        )
        print(placement if pinned(SERVER_CPU) else "not pinned: servers and wrk share the CPUs")
        return compare(project, bake_bin, peers_bin, args)
    finally:
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
        if temporary:
            shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

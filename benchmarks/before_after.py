"""The server before and after a change, per model type, against one bare-ASGI ceiling.

    python benchmarks/before_after.py --before REF [--models ...] [--duration 8] [--workdir DIR]

For each model type it bakes the template as it is now and as it was at git ref REF, trains
both, then runs benchmarks/ceiling.py on the new bake twice: once on its own server and once,
with `--url`, on the old bake's server (its own entry point and `.venv`) started on the same CPU.
Each run loads a bare ASGI app (the ceiling) and the server setting by setting, so every figure
is also a share of the machine's limit, measured beside it. Prints the benchmark's lines and one
table of both, with ratios.
`--workdir` keeps the bakes (trained, with their nox environments) for a second run.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import ceiling
import common
import servers
import wrk

MODELS = ("logistic_regression", "random_forest", "hist_gradient_boosting")
CEILING = Path(__file__).with_name("ceiling.py")
# "ours /predict rows=1 c=8   1234.5 req/s  p50    0.81 ms  p99 ..." and the same for "server";
# the V2 route is "/v2/models/{name}/infer".
LINE = re.compile(
    r"^(?:ours|server) (/\S+) rows=(\d+) c=(\d+)\s+([\d.]+) req/s\s+p50\s+([\d.]+) ms"
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
        bench = [sys.executable, str(CEILING), "--project", str(new), "--duration", args.duration]
        after_out = common.sh([*bench, "--starts", args.starts])
        print(f"-- after ({model}):", *report_lines(after_out), sep="\n  ", flush=True)
        venv, model_dir = ceiling.bake_environment(old), old / "build" / "model"
        with servers.started(servers.ours(venv, ceiling.serve_script(old), model_dir)) as server:
            before_out = common.sh([*bench, "--url", server.base])
            old_rss = wrk.process_rss_mb(server.pid)
        print(f"-- before ({model}):", *report_lines(before_out), sep="\n  ", flush=True)
        after, before = figures(after_out), figures(before_out)
        for key in after:
            (a_rps, a_p50, a_share), (path, n, c) = after[key], key
            now = f"{a_rps:.0f} ({a_share}), p50 {a_p50:.2f} ms"
            if key not in before:  # a route the old server does not have
                rows.append(f"| {model} | {path} rows={n} c={c} | not served | {now} | |")
                continue
            b_rps, b_p50, b_share = before[key]
            rows.append(
                f"| {model} | {path} rows={n} c={c} | {b_rps:.0f} ({b_share}), p50 {b_p50:.2f} ms"
                f" | {now} | {a_rps / b_rps:.1f}x |"
            )
        new_rss = RSS.search(after_out)
        rows.append(
            f"| {model} | RSS after warm-up | {f'{old_rss:.0f}' if old_rss else '?'} MB | "
            f"{new_rss.group(1) if new_rss else '?'} MB | |"
        )
    print("\n| model | setting | before (share of ceiling) | after (share) | after/before |")
    print("| --- | --- | --- | --- | --- |")
    print(*rows, sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

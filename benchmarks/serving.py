"""Serving throughput in the container vs outside Docker, with benchmarks/ceiling.py.

    python benchmarks/serving.py [--project PATH] [--duration 5]

Runs benchmarks/ceiling.py (wrk: /predict, 1 and 100 rows, concurrency 1 and 8; /invocations)
once against the bake's local server and once, with `--url`, against the serving image started with
the pod's settings (from the rendered kind Deployment) except its CPU limit, so both sides have
the same CPUs; its port goes through Docker's loopback proxy, as a Service's would go through
kube-proxy.
Target: the container at most 15% slower.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import common

CEILING = Path(__file__).with_name("ceiling.py")

# A line of benchmarks/ceiling.py: "ours /predict rows=1 c=8   1234.5 req/s  p50 ...".
LINE = re.compile(r"^(?:ours|server) /predict rows=(\d+) c=(\d+)\s+([\d.]+) req/s", re.MULTILINE)


def figures(output: str) -> dict[tuple[int, int], float]:
    """(rows, concurrency) -> requests/s from the benchmark's output."""
    return {(int(r), int(c)): float(rps) for r, c, rps in LINE.findall(output)}


def figure_lines(output: str) -> list[str]:
    """The benchmark's own report lines, without nox's log."""
    keep = ("req/s", "cold start", "load average")
    return [line for line in output.splitlines() if any(k in line for k in keep)]


def main() -> int:
    parser = common.parser(__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", default="5", help="seconds per setting (5)")
    args = parser.parse_args()
    project = common.prepared_project(args.project)
    ref = common.image_ref(project)
    bench = [sys.executable, str(CEILING), "--project", str(project), "--duration", args.duration]
    local = common.sh([*bench, "--starts", "1"])
    print("local server (ceiling.py):", *figure_lines(local), sep="\n  ", flush=True)
    spec = common.serving_pod(project, cpus=False)
    with common.containers.ready(common.engine(), ref, spec) as server:
        inside = common.sh([*bench, "--url", server.url])
    print("container (ceiling.py --url):", *figure_lines(inside), sep="\n  ", flush=True)
    ours, theirs = figures(local), figures(inside)
    if not ours or not theirs:
        raise SystemExit("no req/s figures found in the benchmark output (format changed?)")
    for key in sorted(ours.keys() & theirs.keys()):
        change = theirs[key] / ours[key] - 1
        print(
            f"rows={key[0]:<3} c={key[1]:<2} local {ours[key]:>8.1f} req/s  "
            f"container {theirs[key]:>8.1f} req/s  ({change:+.0%})"
        )
    total = sum(theirs[k] for k in ours.keys() & theirs.keys()) / sum(
        ours[k] for k in ours.keys() & theirs.keys()
    )
    print(f"container / local throughput over all settings: {total:.2f} (target >= 0.85)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Container cold start: `docker run` of the serving image (pod restrictions) to /readyz 200.

    python benchmarks/cold_start.py [--project PATH] [--starts 5]

Target: at most 1.5 s (median). The image is local, so no pull time is included.
"""

from __future__ import annotations

import statistics
import sys
import time

import common


def main() -> int:
    parser = common.parser(__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--starts", type=int, default=5, help="cold starts to measure (5)")
    args = parser.parse_args()
    project = common.prepared_project(args.project)
    ref = common.image_ref(project)
    spec = common.serving_pod(project, cpus=True)
    print(f"{ref}; {common.load_average()}", flush=True)
    seconds = []
    for _ in range(args.starts):
        began = time.monotonic()
        with common.containers.started(common.engine(), ref, spec) as server:
            # Polled every 20 ms and without a liveness check per poll: engine calls in the
            # loop would slow the start being measured. A crash still ends it, at the timeout.
            url = server.url + spec.probes["readiness"].path
            common.waiting.wait_until_ready(url, timeout=120, interval=0.02, details=server.logs)
            seconds.append(time.monotonic() - began)
    print(
        f"cold start (docker run -> /readyz 200): median {statistics.median(seconds):.2f} s, "
        f"min {min(seconds):.2f}, max {max(seconds):.2f} over {len(seconds)} starts (target 1.5 s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Rebuild after a source-only change, with a warm cache: time, and proof the deps were reused.

    python benchmarks/rebuild.py [--project PATH]

Appends a comment to the package's __init__.py (restored afterwards), then times
`docker build` of the serving image and `nox -s build` (hadolint + both images).
Target: under 20 s, with the dependency layer CACHED.
"""

from __future__ import annotations

import re
import sys
import time

import common

# BuildKit's plain progress: "#12 [deps 5/5] RUN ... uv sync ..." and later "#12 CACHED".
STEP = re.compile(r"^#(\d+) \[(\w+) (\d+/\d+)\] (RUN|COPY) (.{0,60})", re.MULTILINE)


def steps(output: str) -> list[tuple[str, str]]:
    """(step, CACHED or built) for every RUN/COPY step in a plain-progress build log."""
    cached = set(re.findall(r"^#(\d+) CACHED", output, re.MULTILINE))
    seen: dict[str, tuple[str, str]] = {}
    for number, stage, index, verb, text in STEP.findall(output):
        label = f"[{stage} {index}] {verb} {text.strip()}"
        seen[number] = (label, "CACHED" if number in cached else "built")
    return list(seen.values())


def main() -> int:
    args = common.parser(__doc__.splitlines()[0] if __doc__ else None).parse_args()
    project = common.prepared_project(args.project)
    ref = common.image_ref(project)
    init = next((project / "src").glob("*/__init__.py"))
    original = init.read_text()
    print(f"{common.load_average()}", flush=True)
    try:
        common.sh(["docker", "build", "--tag", ref, "."], project)  # warm: nothing changed
        init.write_text(original + f"# benchmark edit {time.time()}\n")
        began = time.monotonic()
        output = common.sh(["docker", "build", "--progress=plain", "--tag", ref, "."], project)
        docker_seconds = time.monotonic() - began
        for label, state in steps(output):
            print(f"  {state:<6} {label}")
        init.write_text(original + f"# benchmark edit {time.time()}\n")
        began = time.monotonic()
        common.sh(["nox", "--non-interactive", "-s", "build"], project)
        nox_seconds = time.monotonic() - began
    finally:
        init.write_text(original)
    deps = [state for label, state in steps(output) if "uv sync" in label and "[deps" in label]
    print(f"serving image rebuild after a source change: {docker_seconds:.1f} s (target < 20 s)")
    print(f"dependency layer: {deps[0] if deps else 'not found in the build log'}")
    print(f"`nox -s build` (hadolint + both images) after a source change: {nox_seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

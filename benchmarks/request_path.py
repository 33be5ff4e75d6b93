"""The server's own work per request, without HTTP: parse, check, predict and answer, for bakes
side by side (e.g. before and after a change), the best of many repeats.

    python benchmarks/request_path.py PROJECT [PROJECT ...] [--repeats 300]

Each PROJECT is a trained bake (`nox -s train`; `before_after.py --workdir DIR` keeps two). For
each, a subprocess in the bake's own `.venv` loads its `build/model` as the server does and times
the same bodies as benchmarks/wrk.py sends (records on /predict, dataframe_split on /invocations,
one [N, F] tensor on V2, 1 and 100 rows), each step's best of `--repeats`: the minimum is what a
busy, shared machine disturbs least. A bake without a route prints "-" for it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import ceiling
import wrk

# Run in the bake's venv: the bake's own modules, driven from outside as a subprocess.
PROBE = """
import importlib, json, sys, time
package, model, repeats, bodies = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.load(sys.stdin)
serve = importlib.import_module(package + ".serve")
loading = importlib.import_module(package + ".serve.loading")
requests = importlib.import_module(package + ".serve.requests")
parse_json = importlib.import_module(package + ".serve.body").parse_json
import orjson
served = loading.load_model(model)
served.configure_thread()
validator = requests.RowValidator(served.features, 1000)
try:
    tensors = importlib.import_module(package + ".serve.tensors")
    reader = tensors.TensorReader(validator, served.classes, served.has_proba)
    infer = lambda payload: reader.read(payload).rows
except ImportError:
    infer = None
checks = {"/predict": validator.predict_rows, "/invocations": validator.invocation_rows,
          "V2": infer}
def best(step):
    times = []
    for _ in range(repeats):
        began = time.perf_counter(); step(); times.append(time.perf_counter() - began)
    return min(times) * 1e6
out = {}
for key, body in bodies.items():
    endpoint, _ = key.split(" ")
    check = checks[endpoint]
    if check is None:
        continue
    raw = body.encode()
    payload = parse_json(raw)
    rows = check(payload)
    result = served.predict(rows)
    answer = {"predictions": result.predictions, "probabilities": result.probabilities}
    out[key] = [best(lambda: parse_json(raw)), best(lambda: check(payload)),
                best(lambda: served.predict(rows)), best(lambda: orjson.dumps(answer))]
print(json.dumps(out))
"""
STEPS = ("parse", "check", "predict", "answer")


def package_of(project: Path) -> str:
    """The bake's import name, from its `<package>-serve` entry point."""
    scripts = tomllib.loads((project / "pyproject.toml").read_text())["project"]["scripts"]
    return str(scripts[ceiling.serve_script(project)].split(".")[0])


def bodies(project: Path) -> dict[str, str]:
    """The benchmark's bodies for the bake's model example, 1 and 100 rows, by endpoint."""
    example = json.loads((project / "build" / "model" / "input_example.json").read_text())
    row = dict(zip(example["columns"], example["data"][0], strict=True))
    found = {}
    for rows in (1, 100):
        for endpoint, body in wrk.bodies(row, rows).items():
            name = "V2" if endpoint == wrk.V2_INFER else endpoint
            found[f"{name} {rows}"] = body.decode()
    return found


def measure(project: Path, repeats: int) -> dict[str, list[float]]:
    venv = ceiling.bake_environment(project)
    command = [str(venv / "python"), "-c", PROBE, package_of(project)]
    command += [str(project / "build" / "model"), str(repeats)]
    probe = subprocess.run(
        command, input=json.dumps(bodies(project)), capture_output=True, text=True, check=True
    )
    figures: dict[str, list[float]] = json.loads(probe.stdout.splitlines()[-1])
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("projects", nargs="+", type=Path, help="trained bakes")
    parser.add_argument("--repeats", type=int, default=300, help="best of this many (300)")
    args = parser.parse_args()
    results = {project: measure(project.resolve(), args.repeats) for project in args.projects}
    keys = list(bodies(args.projects[0].resolve()))
    print(f"best of {args.repeats}, µs: {' + '.join(STEPS)} = total; one column per project")
    for i, project in enumerate(args.projects):
        print(f"  [{i}] {project}")
    for key in keys:
        cells = []
        for figures in results.values():
            steps = figures.get(key)
            cells.append(
                "-"
                if steps is None
                else f"{sum(steps):7.1f} ({' + '.join(f'{s:.1f}' for s in steps)})"
            )
        print(f"{key:16}", *cells, sep="  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())

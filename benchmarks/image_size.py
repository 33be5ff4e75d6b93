"""Serving image size: ours vs a naive single-stage image vs `mlflow models build-docker`.

    python benchmarks/image_size.py [--project PATH] [--skip-mlflow]

All three serve the same exported model (build/model). The naive image is what a first
attempt looks like: `pip install` of the model's requirements.txt (MLflow, scikit-learn, skops
at the versions the model was logged with) on the same base, then `mlflow models serve`.
`mlflow models build-docker` wants `python:<exact running version>-slim` as its base; when that
tag is missing locally (nothing can be pulled here) it is tagged from our base and said so.
Target: ours at most 300 MB, uncompressed as `docker image inspect` reports.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path

import common
import docker

NAIVE_DOCKERFILE = """\
FROM python:{python}-slim
COPY model /model
RUN pip install -r /model/requirements.txt
EXPOSE 8000
CMD ["mlflow", "models", "serve", "-m", "/model", "--env-manager", "local", \\
     "-h", "0.0.0.0", "-p", "8000"]
"""


def layers(ref: str) -> list[tuple[str, str]]:
    """(size, instruction) of each non-empty layer, newest first (`docker history`)."""
    return [
        (size_text(layer["Size"]), " ".join(layer["CreatedBy"].split())[:70] or "(base image)")
        for layer in common.engine().images.get(ref).history()
        if layer["Size"]
    ]


def size_text(size: int) -> str:
    """A layer's size the way `docker history` writes it, roughly: 238MB, 45.3kB."""
    return f"{size / 1e6:.3g}MB" if size >= 1e6 else f"{size / 1e3:.3g}kB"


def naive_image(project: Path, python: str) -> str:
    """Build the single-stage image; return its tag."""
    with tempfile.TemporaryDirectory(prefix="naive-") as context:
        shutil.copytree(project / "build" / "model", Path(context) / "model")
        (Path(context) / "Dockerfile").write_text(NAIVE_DOCKERFILE.format(python=python))
        common.sh(["docker", "build", "--tag", "bench-naive:latest", context], timeout=3600)
    return "bench-naive:latest"


def mlflow_image(project: Path, python: str) -> tuple[str, str]:
    """Build with `mlflow models build-docker --env-manager local`; (tag, note on its base)."""
    mlflow = project / ".nox" / "train" / "bin" / "mlflow"
    generated = common.sh(
        [
            str(mlflow),
            "models",
            "generate-dockerfile",
            "-m",
            "build/model",
            "--env-manager",
            "local",
            "-d",
            tempfile.mkdtemp(prefix="mlflow-dockerfile-"),
        ],
        project,
    )
    folder = re.search(r"Generated Dockerfile in directory (\S+)", generated)
    dockerfile = (Path(folder[1]) / "Dockerfile").read_text() if folder else ""
    found = re.search(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    if found is None:
        raise SystemExit(f"no FROM line in mlflow's generated Dockerfile:\n{generated}")
    base = found[1]
    note = f"base {base}"
    if not exists(base):
        repository, _, tag = base.rpartition(":")
        common.engine().images.get(f"python:{python}-slim").tag(repository, tag)
        note = f"base {base} is not here and cannot be pulled: tagged from python:{python}-slim"
    common.sh(
        [
            str(mlflow),
            "models",
            "build-docker",
            "-m",
            "build/model",
            "-n",
            "bench-mlflow:latest",
            "--env-manager",
            "local",
        ],
        project,
        timeout=3600,
    )
    return "bench-mlflow:latest", note


def exists(ref: str) -> bool:
    """Whether image `ref` is present locally."""
    try:
        common.inspect(ref)
    except docker.errors.ImageNotFound:
        return False
    return True


def main() -> int:
    parser = common.parser(__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--skip-mlflow", action="store_true", help="skip mlflow build-docker")
    args = parser.parse_args()
    project = common.prepared_project(args.project)
    python = (project / ".python-version").read_text().strip()
    ours = common.image_ref(project)
    print(f"{common.load_average()}", flush=True)
    print(f"ours   {ours}: {common.megabytes(common.inspect(ours)['Size'])}")
    for size, instruction in layers(ours):
        print(f"         {size:>8}  {instruction}")
    base = common.inspect(f"python:{python}-slim")["Size"]
    print(f"         (base python:{python}-slim: {common.megabytes(base)})")
    naive = naive_image(project, python)
    print(f"naive  single-stage pip install: {common.megabytes(common.inspect(naive)['Size'])}")
    if not args.skip_mlflow:
        image, note = mlflow_image(project, python)
        size = common.megabytes(common.inspect(image)["Size"])
        print(f"mlflow models build-docker --env-manager local: {size} ({note})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the image benchmarks share: a baked, trained and built project, and its containers.

Each script takes `--project PATH` (a baked project where `nox -s train build` has run) or,
without it, bakes the template's defaults into a temporary folder and prepares one itself.
Containers are started, inspected and removed through the Docker SDK, with the pod settings
derived from the bake's rendered kind overlay by the template's proof/containers.py (over
proof/pod_spec.py); nothing is imported from the bake. The scripts need `docker` and `pyyaml`
next to them (and kubectl):

    pip install docker pyyaml   # or: uv run --with docker --with pyyaml python benchmarks/...
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the template's proof/, for `python benchmarks/<script>.py`

try:
    import docker

    from proof import bake
    from proof import containers as containers  # re-exported: the scripts start pods with it
    from proof import waiting as waiting  # re-exported: and wait for servers with it
    from proof.pod_spec import Container
except ModuleNotFoundError as missing:
    raise SystemExit(
        f"{missing.name} is missing: `pip install docker pyyaml` (see benchmarks/common.py)"
    ) from None

IMAGE = "ml-service"


def env() -> dict[str, str]:
    """The environment for baked-project commands: every pyenv Python visible, no downloads."""
    values = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV"}}
    values.setdefault("PYENV_VERSION", "3.11.7:3.12.1:3.13.0")
    values.setdefault("UV_PYTHON_DOWNLOADS", "never")
    return values


def sh(args: list[str], cwd: Path | None = None, timeout: float = 1800) -> str:
    """Run a command; return stdout+stderr, or raise with them if it fails."""
    result = subprocess.run(
        args, cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout, check=False
    )
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited {result.returncode}:\n{output[-4000:]}")
    return output


def parser(description: str | None) -> argparse.ArgumentParser:
    """An argument parser with `--project`."""
    result = argparse.ArgumentParser(description=description)
    result.add_argument(
        "--project",
        type=Path,
        help="a baked project after `nox -s train build` (default: bake one)",
    )
    return result


def prepared_project(path: Path | None, sessions: tuple[str, ...] = ("train", "build")) -> Path:
    """`path`, or a fresh default bake made a git repo, trained and built (its `sessions` run)."""
    if path is not None:
        return path.resolve()
    out = Path(tempfile.mkdtemp(prefix="bench-bake-"))
    sh(["cookiecutter", "--no-input", "-o", str(out), str(ROOT)])
    project = out / IMAGE
    for args in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=b", "-c", "user.email=b@example.com", "commit", "-qm", "bake"],
    ):
        sh(args, project)
    print(f"baked {project}; nox -s {' '.join(sessions)} (minutes on a cold cache)", flush=True)
    sh(["nox", "--non-interactive", "-s", *sessions], project)
    return project


def image_ref(project: Path, image: str = IMAGE) -> str:
    """The tag `nox -s build` gives `image` for the project's HEAD (the bake's own tag rule)."""
    return bake.image_ref(project, image)


@functools.cache
def engine() -> docker.DockerClient:
    """The Docker engine, through the SDK."""
    return docker.from_env(timeout=300)


def inspect(ref: str) -> dict[str, Any]:
    """`docker image inspect` of one image."""
    info: dict[str, Any] = engine().images.get(ref).attrs
    return info


def megabytes(size: float) -> str:
    return f"{size / 1e6:.0f} MB"


def serving_pod(project: Path, *, cpus: bool) -> Container:
    """The serving container of the bake's rendered kind overlay (proof/containers.py).

    `cpus=False` lifts its CPU limit, for comparisons with a server that has none.
    """
    return containers.serving_pod(project, cpus=cpus)


def load_average() -> str:
    """How busy the machine is: shared machines skew every figure."""
    return f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"

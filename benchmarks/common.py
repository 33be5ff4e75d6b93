"""What the image benchmarks share: a baked, trained and built project, and its containers.

Each script takes `--project PATH` (a baked project where `nox -s train build` has run) or,
without it, bakes the template's defaults into a temporary folder and prepares one itself.
Containers are started, inspected and removed through the Docker SDK, with the pod settings the
bake's own code derives from its rendered kind overlay (tests/container/pod.py over
tools/pod_spec.py), so the scripts need `docker` and `pyyaml` next to them (and kubectl):

    pip install docker pyyaml   # or: uv run --with docker --with pyyaml python benchmarks/...
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

try:
    import docker
    import yaml  # noqa: F401 - the bake's tools/pod_spec.py reads the rendered overlay with it
except ModuleNotFoundError as missing:
    raise SystemExit(
        f"{missing.name} is missing: `pip install docker pyyaml` (see benchmarks/common.py)"
    ) from None

ROOT = Path(__file__).resolve().parent.parent
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
    ref: str = bake_module(project, "tools.project").image_ref(image)
    return ref


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


def bake_module(project: Path, name: str) -> ModuleType:
    """A module of the baked project's own code (`tools.waiting`, `tests.container.pod`...)."""
    if str(project) not in sys.path:
        sys.path.insert(0, str(project))
    return importlib.import_module(name)


def serving_pod(project: Path, *, cpus: bool) -> Any:
    """The serving container of the bake's rendered kind overlay (tools/pod_spec.Container).

    `cpus=False` lifts its CPU limit, for comparisons with a server that has none.
    """
    pod_spec = bake_module(project, "tools.pod_spec")
    docs = pod_spec.render(project / "k8s" / "overlays" / "kind")
    spec = bake_module(project, "tests.container.pod").pod(docs, "serving")
    return spec if cpus else dataclasses.replace(spec, nano_cpus=None)


def containers(project: Path) -> ModuleType:
    """The bake's tests/container/containers.py: start an image as its pod, wait, remove it."""
    return bake_module(project, "tests.container.containers")


def load_average() -> str:
    """How busy the machine is: shared machines skew every figure."""
    return f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"

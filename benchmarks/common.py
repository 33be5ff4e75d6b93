"""What the image benchmarks share: a baked, trained and built project, and docker helpers.

Each script takes `--project PATH` (a baked project where `nox -s train build` has run) or,
without it, bakes the template's defaults into a temporary folder and prepares one itself.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "ml-service"
# What k8s/base/deployment.yaml gives the serving container (tests/container uses the same).
POD_OPTIONS = (
    "--user=10001:10001",
    "--read-only",
    "--tmpfs=/tmp:rw,nosuid,nodev,size=64m",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
    "--memory=768m",
)


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


def prepared_project(path: Path | None) -> Path:
    """`path`, or a fresh default bake made a git repo, trained and built."""
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
    print(f"baked {project}; training and building (a few minutes on a cold cache)", flush=True)
    sh(["nox", "--non-interactive", "-s", "train", "build"], project)
    return project


def image_ref(project: Path, image: str = IMAGE) -> str:
    """The tag `nox -s build` gives `image` for the project's HEAD."""
    return f"{image}:{sh(['git', 'rev-parse', '--short', 'HEAD'], project).strip()}"


def inspect(ref: str) -> dict[str, Any]:
    """`docker image inspect` of one image."""
    info: dict[str, Any] = json.loads(sh(["docker", "image", "inspect", ref]))[0]
    return info


def megabytes(size: float) -> str:
    return f"{size / 1e6:.0f} MB"


def start(ref: str, *options: str) -> tuple[str, str]:
    """Start the serving image detached on a free loopback port; (container id, base URL)."""
    container = sh(
        ["docker", "run", "--detach", "--publish=127.0.0.1::8000", *options, ref]
    ).strip()
    address = sh(["docker", "port", container, "8000/tcp"]).split()[0]
    return container, f"http://{address}"


def wait_ready(url: str, timeout: float = 120) -> None:
    """Poll `url` until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except (OSError, urllib.error.HTTPError):
            pass
        time.sleep(0.02)
    raise SystemExit(f"{url} did not answer 200 within {timeout} s")


def remove(container: str) -> None:
    subprocess.run(["docker", "rm", "--force", container], capture_output=True, check=False)


def load_average() -> str:
    """How busy the machine is: shared machines skew every figure."""
    return f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"

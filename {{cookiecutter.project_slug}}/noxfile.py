"""Sessions for {{ cookiecutter.project_name }}: `nox -l` lists them, `nox` runs the defaults."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import nox

nox.needs_version = ">=2024.10.9"
nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_external_run = True
# The defaults need no Docker, no cluster and no account.
nox.options.sessions = ["lint", "typecheck", "tests", "train"]

ROOT = Path(__file__).parent
PYTHON = (ROOT / ".python-version").read_text().strip()
PACKAGE = "{{ cookiecutter.package_name }}"
IMAGE = "{{ cookiecutter.image_name }}"
TRAIN_IMAGE = f"{IMAGE}-train"
REGISTRY = os.environ.get("REGISTRY", "{{ cookiecutter.image_registry }}")
MODEL_DIR = ROOT / "build" / "model"


def install(session: nox.Session, *extras: str, dev: bool = True) -> None:
    """Install the project from uv.lock (exact pins) into the session's virtualenv."""
    args = ["uv", "sync", "--frozen", "--no-default-groups", "--inexact"]
    args += [f"--extra={extra}" for extra in extras]
    if dev:
        args.append("--group=dev")
    session.run_install(*args, env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location})


def image_tag() -> str:
    """The git short SHA of HEAD, or `dev` outside a git checkout."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "dev"


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Lint and format-check the code with ruff."""
    install(session)
    args = session.posargs or ["src", "tests", "noxfile.py"]
    session.run("ruff", "check", *args)
    session.run("ruff", "format", "--check", *args)


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """Type-check the code with mypy."""
    install(session, "train", "serve")
    session.run("mypy", *session.posargs)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the tests that need no Docker, with coverage."""
    install(session, "train", "serve")
    session.run("pytest", "--cov", "-m", "not docker", *session.posargs)


@nox.session(python=PYTHON)
def train(session: nox.Session) -> None:
    """Train, log to MLflow, register and export the champion model."""
    install(session, "train", dev=False)
    session.run(f"{PACKAGE}-train", *session.posargs)

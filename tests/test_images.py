"""Image checks of baked projects, with a real Docker engine and registry: build, smoke, scan
and push round-trip through localhost:5000; the linters report nothing; the serving image runs
under its Deployment's settings as the template's proof reads them; the training image logs to a
real MLflow server; a Python 3.11 random-forest bake builds and passes its smoke tests."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker as docker_sdk
import pytest
import yaml

from proof.bake import image_ref
from proof.containers import ready, serving_pod, startup_seconds
from proof.waiting import free_port, wait_until_ready
from tests.conftest import bake, git_init, nox, project_env, run
from tests.report import condense

pytestmark = pytest.mark.docker

REGISTRY = "localhost:5000"
IMAGE = "ml-service"
PUSHED = re.compile(r"pushed (\S+) (sha256:[0-9a-f]{64})")
# A refused training's gate line: its own figure, then the champion's on the same holdout.
GATE_FIGURES = re.compile(
    r"(?P<metric>\w+)=(?P<challenger>-?\d+\.\d+); "
    r"'champion' \(version (?P<version>\d+)\) (?P=metric)=(?P<champion>-?\d+\.\d+)"
)


def head(project: Path) -> str:
    return run(["git", "rev-parse", "HEAD"], project).stdout.strip()


def tag_of(project: Path) -> str:
    """The image tag of HEAD: `sha-` and 7 hex digits, as CI's metadata-action `type=sha`."""
    found = run(["git", "rev-parse", "--short=7", "HEAD"], project).stdout.strip()
    return f"sha-{found}"


def inspect(docker: str, ref: str) -> dict[str, Any]:
    info: dict[str, Any] = json.loads(run([docker, "image", "inspect", ref], Path.cwd()).stdout)[0]
    return info


@pytest.fixture(scope="module")
def pipeline(trained_project: Path, docker: str) -> str:
    """`nox -s build smoke scan push` in the trained bake, pushing to the local registry.

    This machine may have no route to trivy's DB: the scan is told so (it fails in CI otherwise).
    """
    return nox(
        trained_project, "build", "smoke", "scan", "push", REGISTRY=REGISTRY, SCAN_OFFLINE_OK="1"
    )


def test_build_prints_sizes_and_labels_the_model(
    trained_project: Path, docker: str, pipeline: str
) -> None:
    tag = tag_of(trained_project)
    for image in (IMAGE, f"{IMAGE}-train"):
        assert re.search(rf"{image}:{tag}: \d+ MB", pipeline), f"no size printed for {image}"
    labels = inspect(docker, f"{IMAGE}:{tag}")["Config"]["Labels"]
    mlmodel = yaml.safe_load((trained_project / "build" / "model" / "MLmodel").read_text())
    assert labels["org.opencontainers.image.revision"] == head(trained_project)
    assert labels["org.opencontainers.image.version"] == "0.1.0"
    assert labels["ai.mlflow.run-id"] == mlmodel["run_id"]
    assert labels["ai.mlflow.model.name"] == mlmodel["metadata"]["model_name"] == IMAGE
    assert labels["ai.mlflow.model.version"] == mlmodel["metadata"]["model_version"]


def test_smoke_tests_ran_and_passed(pipeline: str) -> None:
    summary = re.search(r"=+ (\d+) passed(?P<rest>[^=]*)=+", pipeline)
    assert summary, "no pytest summary from `nox -s smoke`"
    assert int(summary[1]) >= 10
    assert "skipped" not in summary["rest"]


def test_serving_image_runs_as_its_deployment_under_the_strict_reading(
    trained_project: Path, pipeline: str
) -> None:
    """Started from outside the bake by proof/containers.py, with every field of the rendered
    Deployment read by proof/pod_spec.py (the rehearsal's reading, which refuses what it cannot
    reproduce): each probe answers within the startup budget, the engine holds the pod's limits,
    and the example predicts."""
    spec = serving_pod(trained_project)
    engine = docker_sdk.from_env(timeout=120)
    with ready(engine, image_ref(trained_project, IMAGE), spec) as server:
        for probe in spec.probes.values():
            wait_until_ready(
                server.url + probe.path,
                timeout=startup_seconds(spec),
                alive=server.running,
                details=server.logs,
            )
        attrs = server.inspect()
        host = attrs["HostConfig"]
        assert (host["Memory"], host["MemorySwap"], host["NanoCpus"]) == (
            spec.memory,
            spec.memory,
            spec.nano_cpus,
        )
        assert (host["ReadonlyRootfs"], host["CapDrop"]) == (True, ["ALL"])
        assert host["SecurityOpt"] == ["no-new-privileges"]
        assert attrs["Config"]["User"] == spec.user == "10001:10001"
        rows, predictions = server.predict_example()
        assert len(predictions) == len(rows)
    engine.close()


def test_pushed_digests_match_what_the_registry_serves(
    trained_project: Path, docker: str, pipeline: str
) -> None:
    tag = tag_of(trained_project)
    pushed = dict(PUSHED.findall(pipeline))
    assert set(pushed) == {f"{REGISTRY}/{IMAGE}:{tag}", f"{REGISTRY}/{IMAGE}-train:{tag}"}
    for ref, digest in pushed.items():
        repository = ref.rpartition(":")[0]
        run([docker, "image", "rm", ref], trained_project)  # only the tag: layers stay local
        run([docker, "pull", ref], trained_project)
        assert f"{repository}@{digest}" in inspect(docker, ref)["RepoDigests"]
        run([docker, "pull", f"{repository}@{digest}"], trained_project)


def test_scan_reports_the_vulnerability_db_state(pipeline: str) -> None:
    # Either trivy had its DB and scanned for vulnerabilities, or it said in one line it could not.
    assert "--scanners vuln" in pipeline or "vulnerability scan skipped" in pipeline


def test_hadolint_and_trivy_config_report_nothing(trained_project: Path, pipeline: str) -> None:
    nox_bin = trained_project / ".nox"
    hadolint = nox_bin / "build" / "bin" / "hadolint"
    findings = run(
        [
            str(hadolint),
            "--config",
            ".hadolint.yaml",
            "--format",
            "json",
            "--failure-threshold",
            "none",
            "Dockerfile",
            "Dockerfile.train",
        ],
        trained_project,
    ).stdout
    assert json.loads(findings) == []
    trivy = shutil.which("trivy") or str(nox_bin / "scan" / "bin" / "trivy")
    config = [trivy, "config", "--config", "trivy.yaml", "--format", "json", "--exit-code", "0"]
    scans = {
        "dockerfiles": [*config, "--misconfig-scanners", "dockerfile", "."],
        # `nox -s scan` rendered the overlays into build/manifests.
        "manifests": [*config, "--ignorefile", "k8s/.trivyignore.yaml", "build/manifests"],
    }
    targets = set()
    for name, args in scans.items():
        results = json.loads(run(args, trained_project).stdout).get("Results", [])
        targets |= {r["Target"] for r in results}
        failed = [(r["Target"], m["ID"]) for r in results for m in r.get("Misconfigurations") or []]
        assert failed == [], f"trivy config ({name}) found {failed}"
    assert {"Dockerfile", "Dockerfile.train", "kind.yaml", "production.yaml"} <= targets


def test_training_image_logs_to_a_real_mlflow_server(trained_project: Path, pipeline: str) -> None:
    # The check itself is the bake's tests/container/test_training_image.py.
    output = nox(trained_project, "train-image")
    summary = re.search(r"=+ (\d+) passed(?P<rest>[^=]*)=+", output)
    assert summary, output[-3000:]
    assert "skipped" not in summary["rest"]


def test_python_311_tree_regressor_bake_builds_and_passes_smoke(
    tmp_path_factory: pytest.TempPathFactory, docker: str
) -> None:
    # The other base, a tree model and the other task: skops' trusted tree types through the
    # stripped image, and a regressor served (predictions only) by the same smoke tests.
    project = bake(
        tmp_path_factory.mktemp("py311"),
        python_version="3.11",
        model="random_forest",
        task="regression",
    )
    git_init(project)
    assert "r2=" in nox(project, "train")
    output = nox(project, "build", "smoke")
    assert re.search(r"=+ \d+ passed", output)
    ref = f"{IMAGE}:{tag_of(project)}"
    version = run(
        [
            docker,
            "run",
            "--rm",
            "--entrypoint",
            "python",
            ref,
            "-c",
            "import sys; print(*sys.version_info[:2], sep='.')",
        ],
        project,
    ).stdout.strip()
    assert version == "3.11"


@contextmanager
def mlflow_server(project: Path, root: Path) -> Iterator[str]:
    """A real `mlflow server` from the bake's training venv, its store in `root`; yields its URL.

    It stands in for a team's shared server: SQLite backend, artifacts proxied to a folder.
    """
    url = f"http://127.0.0.1:{free_port()}"
    log = root / "server.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [
                str(project / ".nox" / "train" / "bin" / "mlflow"),
                "server",
                "--host=127.0.0.1",
                f"--port={url.rpartition(':')[2]}",
                "--workers=1",
                f"--backend-store-uri=sqlite:///{root / 'mlflow.db'}",
                f"--artifacts-destination={root / 'artifacts'}",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=project_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"),  # no job workers
        )
    try:
        wait_until_ready(
            f"{url}/health",
            timeout=180,
            alive=lambda: server.poll() is None,
            details=lambda: log.read_text()[-3000:],
        )
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=30) as answer:  # noqa: S310 - loopback, ours
        body: dict[str, Any] = json.load(answer)
    return body


def champion_of(url: str, name: str) -> dict[str, Any]:
    """The registry's answer for `name@champion` (MLflow's REST API: no MLflow client here)."""
    query = urllib.parse.urlencode({"name": name, "alias": "champion"})
    answer = get_json(f"{url}/api/2.0/mlflow/registered-models/alias?{query}")
    version: dict[str, Any] = answer["model_version"]
    return version


def test_a_clean_checkout_builds_and_serves_the_registrys_champion(
    trained_project: Path,
    docker: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 17's build path: two trainings against a shared server (the second, on a tenth
    of the rows, refused against the champion), then in a fresh clone without build/,
    `MODEL_URI=models:/<name>@champion nox -s build smoke`; the image serves that version and
    its labels name it, its run and the registry."""
    root = tmp_path / "registry"
    root.mkdir()
    with mlflow_server(trained_project, root) as url:
        elsewhere = {"MLFLOW_TRACKING_URI": url, "EXPORT_DIR": str(tmp_path / "export")}
        nox(trained_project, "train", **elsewhere)
        refused = subprocess.run(
            ["nox", "--non-interactive", "-s", "train"],
            cwd=trained_project,
            env=project_env(**elsewhere, TEST_SIZE="0.9"),
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        figures = GATE_FIGURES.search(refused.stdout + refused.stderr)  # nox mixes them
        assert refused.returncode != 0, condense(refused.stdout, refused.stderr)
        assert figures, condense(refused.stdout, refused.stderr)
        exit_code = re.search(r"exit code \d+", refused.stdout + refused.stderr) or ["?"]
        champion = champion_of(url, IMAGE)
        assert champion["version"] == figures["version"] == "1"

        clean = tmp_path / "clean"
        run(["git", "clone", "-q", str(trained_project), str(clean)], tmp_path)
        assert not (clean / "build").exists()
        # Its own commit, so its own image tag: the trained bake's images stay as they are.
        run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit",
             "--allow-empty", "-qm", "build from the registry"], clean)  # fmt: skip
        uri = f"models:/{IMAGE}@champion"
        output = nox(clean, "build", "smoke", MODEL_URI=uri, MLFLOW_TRACKING_URI=url)
    assert re.search(r"=+ \d+ passed", output), output[-3000:]
    refs = [f"{image}:{tag_of(clean)}" for image in (IMAGE, f"{IMAGE}-train")]
    try:
        labels = inspect(docker, refs[0])["Config"]["Labels"]
        assert labels["ai.mlflow.model.name"] == IMAGE
        assert labels["ai.mlflow.model.version"] == champion["version"]
        assert labels["ai.mlflow.run-id"] == champion["run_id"]
        assert labels["ai.mlflow.registry-uri"] == url
        engine = docker_sdk.from_env(timeout=120)
        with ready(engine, refs[0], serving_pod(clean)) as server:
            served = get_json(f"{server.url}/metadata")
        engine.close()
        assert (served["model_name"], served["model_version"]) == (IMAGE, champion["version"])
    finally:
        run([docker, "image", "rm", *refs], tmp_path)
    with capsys.disabled():  # the figures, shown without -s too
        print(
            f"\nregistry {url}: champion {IMAGE} version {champion['version']} "
            f"(run {champion['run_id']}); challenger refused ({exit_code[0]}): "
            f"{figures['metric']}={figures['challenger']} vs the champion's "
            f"{figures['champion']} on its holdout\nimage {refs[0]} labels: "
            + ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k.startswith("ai.mlflow"))
            + f"\nserved /metadata: version {served['model_version']} ({served.get('runtime')})"
        )

"""The kind overlay of baked projects, run on Docker under exactly what it declares.

No cluster can run here, so the template's proof/rehearsal.py, driven from outside each trained
and built bake, plays kubelet and kube-proxy with the Docker SDK: every Deployment and Job of the
bake's rendered overlay with its own limits, probes, volumes and Services, the training Job
against the in-cluster MLflow (once on a CSV its ConfigMap's DATA_PATH names, served over HTTP
on the network), the autoscaler demo's load Job against the serving Service, then scaled to the
autoscaler's ceiling. The default bake's rehearsal then plays its canary flow (proof/canary.py,
driving the bake's `tools.canary` from outside): a diverged model version (NaN weights) rolled
back with stable untouched, then a genuinely new version (trained and built again) promoted, with
no client failure beyond the canary's share. The last test breaks the MLflow server the way
MLflow 3.17's defaults do and checks that the rehearsal fails.
"""

from __future__ import annotations

import contextlib
import csv
import random
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from proof.bake import image_options, image_ref, images
from proof.canary import allowed_failures
from tests.conftest import CUSTOM_ANSWERS, TEMPLATE, bake, git_init, nox, project_env, run

pytestmark = pytest.mark.rehearsal

JOB_EXECUTION_OFF = """            - name: MLFLOW_SERVER_ENABLE_JOB_EXECUTION
              value: "false"
"""
# A training run that diverged, as its exported folder would hold it: the classifier's
# weights NaN in the skops file and, where training added a verified ONNX twin, in the ONNX
# graph too, with the reference answers its export check would have recorded for it.
DIVERGE = """
import json, sys
from pathlib import Path
import numpy as np, onnx, onnxruntime, skops.io, yaml
from onnx import numpy_helper
folder = Path(sys.argv[1])
mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
flavor = mlmodel["flavors"]["sklearn"]
path = folder / flavor["pickled_model"]
model = skops.io.load(path, trusted=flavor.get("skops_trusted_types") or None)
model[-1].coef_ = np.full_like(model[-1].coef_, np.nan)
skops.io.dump(model, path)
spec = (mlmodel.get("metadata") or {}).get("onnx")
if spec:
    graph = onnx.load(folder / spec["model"])
    [coef] = [i for i in graph.graph.initializer if i.name == "coef"]
    nan = np.full_like(numpy_helper.to_array(coef), np.nan)
    coef.CopyFrom(numpy_helper.from_array(nan, "coef"))
    onnx.save(graph, folder / spec["model"])
    reference = json.loads((folder / spec["reference"]).read_text())
    session = onnxruntime.InferenceSession(str(folder / spec["model"]))
    x = np.asarray(reference["inputs"], dtype=np.float64)
    [proba] = session.run(["probabilities"], {session.get_inputs()[0].name: x})
    reference["probabilities"] = np.asarray(proba, dtype=np.float64).tolist()
    reference["predictions"] = [reference["classes"][i] for i in np.argmax(proba, axis=1)]
    (folder / spec["reference"]).write_text(json.dumps(reference))
"""


@pytest.fixture(scope="module")
def built_default(trained_project: Path, docker: str) -> Path:
    nox(trained_project, "build")
    return trained_project


@pytest.fixture(scope="module")
def new_version(built_default: Path) -> str:
    """The default bake's next model version: an empty commit, `nox -s train` (version 2, the
    new champion: same data, not worse) and `nox -s build` (images tagged for that commit).
    HEAD goes back after, so `image_options` still names the first build's images."""
    head = run(["git", "rev-parse", "HEAD"], built_default).stdout.strip()
    author = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    run(["git", *author, "commit", "-q", "--allow-empty", "-m", "model v2"], built_default)
    try:
        nox(built_default, "train", "build")
        return image_ref(built_default, images(built_default)[0])
    finally:
        run(["git", "reset", "-q", "--soft", head], built_default)


@pytest.fixture
def diverged_version(
    built_default: Path, new_version: str, tmp_path_factory: pytest.TempPathFactory, docker: str
) -> Iterator[str]:
    """`new_version`'s image with its model's weights NaN (DIVERGE), tagged per run."""
    context = tmp_path_factory.mktemp("diverged")
    model = context / "model"
    shutil.copytree((built_default / "build" / "model").resolve(), model)
    python = built_default / ".nox" / "train" / "bin" / "python"  # the bake's training env
    run([str(python), "-c", DIVERGE, str(model)], built_default)
    for path in [model, *model.rglob("*")]:  # readable by the image's user (UID 10001)
        path.chmod(0o755 if path.is_dir() else 0o644)
    (context / "Dockerfile").write_text(f"FROM {new_version}\nCOPY model /app/model\n")
    tag = f"{new_version.split(':')[0]}-diverged:{uuid.uuid4().hex[:8]}"
    run([docker, "build", "-q", "-t", tag, str(context)], built_default)
    yield tag
    subprocess.run([docker, "rmi", "-f", tag], capture_output=True, check=False)


@pytest.fixture(scope="module")
def built_custom(tmp_path_factory: pytest.TempPathFactory, docker: str) -> Path:
    project = bake(tmp_path_factory.mktemp("custom"), **CUSTOM_ANSWERS)
    git_init(project)
    nox(project, "train", "build")
    return project


def rehearse(project: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """`python -m proof.rehearsal` from the template's root on the bake's kind overlay, then its
    autoscaler demo's load, with the images its `nox -s build` made for HEAD."""
    overlays = [str(project / "k8s" / "overlays" / "kind"), str(project / "k8s" / "hpa-load")]
    return subprocess.run(
        [sys.executable, "-m", "proof.rehearsal", *overlays, *image_options(project), *options],
        cwd=TEMPLATE,
        env=project_env(PYTHONUNBUFFERED="1"),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def rehearsed(project: Path, *options: str) -> str:
    """The rehearsal's output; the test fails with it if the rehearsal failed."""
    result = rehearse(project, *options)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        pytest.fail(f"proof.rehearsal exited {result.returncode}:\n{output[-6000:]}", pytrace=False)
    return output


def check_rehearsal(output: str, slug: str, floor: int, ceiling: int) -> str:
    """Every phase of the rehearsal happened, with the answered names and replica counts.
    Returns what the in-cluster champion was trained on (its run's `data_source`)."""
    shown = ("peak memory", "champion: ")
    print("\n".join(line for line in output.splitlines() if line.startswith(shown)))
    assert f"Deployment/{slug}: {floor} replica(s) started" in output
    assert f"Job/{slug}-train: complete after" in output
    [source] = re.findall(
        rf"^champion: {re.escape(slug)} version \d+ trained on (.+)$", output, re.M
    )
    assert re.search(r"^Service/mlflow via port-forward \(Host localhost:\d+\): 200$", output, re.M)
    assert re.search(rf"ready: Deployment/{re.escape(slug)} x{floor}, Deployment/mlflow x1", output)
    assert f"predictions through http://{slug}:80" in output
    # The autoscaler demo's load ran against the floor replicas and got answers.
    assert re.search(
        rf"Job/{re.escape(slug)}-load said: \d+ requests in \d+s: \{{'200': \d+", output
    )
    assert f"Deployment/{slug}: scaled to {ceiling}, all ready" in output
    [spread] = re.findall(rf"Service/{re.escape(slug)} spread /predict over its pods: (.*)", output)
    assert spread.count(":") == ceiling, spread
    workloads = (f"Deployment/{slug}", "Deployment/mlflow", f"Job/{slug}-train", f"Job/{slug}-load")
    for workload in workloads:
        assert re.search(rf"peak memory {re.escape(workload)}: \d+ MiB of \d+ MiB", output)
    assert "rehearsal passed" in output
    return str(source)


def write_mixed_csv(path: Path, rows: int = 400) -> None:
    """Numeric and categorical columns, with gaps in both; the label depends on each."""
    rng = random.Random(17)  # noqa: S311 - reproducible data, not secrets
    with path.open("w", newline="") as file:
        out = csv.writer(file)
        out.writerow(["size", "colour", "label"])
        for row in range(rows):
            size, colour = rng.gauss(0, 1), rng.choice(["red", "green", "blue"])
            label = "yes" if size > 0 or colour == "red" else "no"
            gaps = ("" if row % 10 == 0 else f"{size:.3f}", "" if row % 7 == 0 else colour)
            out.writerow([*gaps, label])


@contextlib.contextmanager
def training_settings(project: Path, settings: str) -> Iterator[None]:
    """The kind overlay's train-settings.env (the training Job's ConfigMap) as a team edits it."""
    path = project / "k8s" / "overlays" / "kind" / "train-settings.env"
    original = path.read_text()
    path.write_text(original + settings)
    try:
        yield
    finally:
        path.write_text(original)


def check_canaries(output: str, stable: str, diverged: str, good: str) -> None:
    """The diverged canary rolled back for its non-finite predictions, stable untouched; the
    good one promoted; clients failed only within the diverged canary's share."""
    shown = (
        "Deployment/ml-service-canary",
        "clients ",
        "canary ",
        "rolled back",
        "promoted",
    )
    print("\n".join(line for line in output.splitlines() if line.startswith(shown)))
    failures = {}
    for ref in (diverged, good):
        clients = rf"^clients during canary {re.escape(ref)}: (\d+) requests, (\d+) failed "
        [(requests, failed, share)] = re.findall(clients + r"\(share ([\d.]+) ", output, re.M)
        assert int(failed) <= allowed_failures(int(requests), float(share))
        failures[ref] = int(failed)
    assert failures[diverged] > 0, failures
    assert failures[good] == 0, failures
    assert re.search(rf"^canary {re.escape(diverged)}: roll back: .*non-finite", output, re.M)
    assert re.search(
        r"^rolled back: Deployment/ml-service untouched, same 5 containers", output, re.M
    )
    assert re.search(rf"^canary {re.escape(good)}: promote: ", output, re.M)
    assert f"promoted: Deployment/ml-service rolled to {good}, 5 pods one by one" in output
    during = rf"^clients during the promotion to {re.escape(good)}: \d+ requests, 0 failed$"
    assert re.search(during, output, re.M)
    for ref, serving in ((diverged, stable), (good, good)):
        after = rf"^clients after canary {re.escape(ref)}: \d+ requests, 0 failed; "
        assert re.search(after + rf"Deployment/ml-service runs {re.escape(serving)}$", output, re.M)


def test_default_bake_trains_in_cluster_on_its_csv_under_its_own_limits(
    built_default: Path, tmp_path: Path, new_version: str, diverged_version: str
) -> None:
    """The training Job reads DATA_PATH from its ConfigMap, a CSV served over HTTP on the
    network, and moves the in-cluster champion. Then a diverged canary and a good one."""
    write_mixed_csv(tmp_path / "mixed.csv")
    url = "http://training-data/mixed.csv"
    canaries = ["--canary", diverged_version, "--canary", new_version]
    with training_settings(built_default, f"DATA_PATH={url}\nTARGET_COLUMN=label\n"):
        output = rehearsed(built_default, "--files", f"training-data={tmp_path}", *canaries)
    assert check_rehearsal(output, "ml-service", floor=2, ceiling=5) == url
    stable = image_ref(built_default, images(built_default)[0])
    check_canaries(output, stable, diverged_version, new_version)


def test_custom_answers_run_their_kind_overlay_under_its_own_limits(built_custom: Path) -> None:
    """An empty ConfigMap: the Job trains on the bundled data, as before."""
    replicas, ceiling = int(CUSTOM_ANSWERS["replicas"]), int(CUSTOM_ANSWERS["max_replicas"])
    source = check_rehearsal(rehearsed(built_custom), "fraud-scorer", replicas, ceiling)
    assert "://" not in source, source


def test_rehearsal_fails_when_mlflow_starts_its_job_workers(built_default: Path) -> None:
    """MLflow 3.17's default job workers under the 1Gi limit: an OOM kill, and a red rehearsal."""
    manifest = built_default / "k8s" / "overlays" / "kind" / "mlflow.yaml"
    original = manifest.read_text()
    assert JOB_EXECUTION_OFF in original
    manifest.write_text(original.replace(JOB_EXECUTION_OFF, ""))
    try:
        result = rehearse(built_default)
    finally:
        manifest.write_text(original)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert re.search(r"rehearsal failed: .*OOM.*mlflow", output), output[-3000:]

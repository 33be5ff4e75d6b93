"""The kind overlay of baked projects, run on Docker under exactly what it declares.

No cluster can run here, so the template's proof/rehearsal.py, driven from outside each trained
and built bake, plays kubelet and kube-proxy with the Docker SDK: every Deployment and Job of the
bake's rendered overlay with its own limits, probes, volumes and Services, the training Job
against the in-cluster MLflow (once on a CSV its ConfigMap's DATA_PATH names, served over HTTP
on the network), the autoscaler demo's load Job against the serving Service, then scaled to the
autoscaler's ceiling. The last test breaks the MLflow server the way MLflow 3.17's
defaults do and checks that the rehearsal fails.
"""

from __future__ import annotations

import contextlib
import csv
import random
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from proof.bake import image_options
from tests.conftest import CUSTOM_ANSWERS, TEMPLATE, bake, git_init, nox, project_env

pytestmark = pytest.mark.rehearsal

JOB_EXECUTION_OFF = """            - name: MLFLOW_SERVER_ENABLE_JOB_EXECUTION
              value: "false"
"""


@pytest.fixture(scope="module")
def built_default(trained_project: Path, docker: str) -> Path:
    nox(trained_project, "build")
    return trained_project


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


def test_default_bake_trains_in_cluster_on_its_csv_under_its_own_limits(
    built_default: Path, tmp_path: Path
) -> None:
    """The training Job reads DATA_PATH from its ConfigMap, a CSV served over HTTP on the
    network, and moves the in-cluster champion."""
    write_mixed_csv(tmp_path / "mixed.csv")
    url = "http://training-data/mixed.csv"
    with training_settings(built_default, f"DATA_PATH={url}\nTARGET_COLUMN=label\n"):
        output = rehearsed(built_default, "--files", f"training-data={tmp_path}")
    assert check_rehearsal(output, "ml-service", floor=2, ceiling=5) == url


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

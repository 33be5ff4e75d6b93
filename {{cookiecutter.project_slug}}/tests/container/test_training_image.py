"""The training image, run as the kind overlay's Job runs it, against a real MLflow server.

A local `mlflow server` (SQLite backend, artifacts proxied to a folder) stands in for the
cluster's tracking server; the container reaches it over the host's loopback. Afterwards the
server must hold a finished run with metrics and a READY registered version; both are printed
(even without `-s`) so `nox -s train-image` shows what arrived.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import docker
import pytest
from mlflow.tracking import MlflowClient

from ..mlflow_server import mlflow_server
from .pod import Pod, run_kwargs

# Measured on a busy 2-core host: the job took 14 s from start to exit.
TRAIN_SECONDS = 600
# Where the container reads and writes: the test decides, not the caller's environment.
OWN_SETTINGS = {"mlflow_tracking_uri", "export_dir", "data_path"}


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` on a free loopback port; yields its URL."""
    with mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as url:
        yield url


def forwarded_settings() -> dict[str, str]:
    """Training settings set in this environment (MODEL_TYPE=... nox -s train-image)."""
    # Imported here: a top-level import would sort differently with each package name.
    from {{ cookiecutter.package_name }}.config import (
        TrainSettings,
    )

    names = (name.upper() for name in TrainSettings.model_fields if name not in OWN_SETTINGS)
    return {name: os.environ[name] for name in names if name in os.environ}


def test_training_image_logs_a_run_and_registers_a_model(
    engine: docker.DockerClient,
    training_image: str,
    training_pod: Pod,
    tracking_server: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    kwargs = run_kwargs(training_pod)
    environment = kwargs.pop("environment") | forwarded_settings()
    environment["MLFLOW_TRACKING_URI"] = tracking_server
    container = engine.containers.run(
        training_image,
        detach=True,
        network_mode="host",  # the tracking server listens on the host's loopback
        environment=environment,
        **(kwargs | {"ports": {}}),
    )
    try:
        exit_code = container.wait(timeout=TRAIN_SECONDS)["StatusCode"]
        logs = container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
    assert exit_code == 0, logs[-4000:]

    client = MlflowClient(tracking_server)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments)
    versions = client.search_model_versions()
    with capsys.disabled():  # shown without -s too
        for run in runs:
            metrics = " ".join(f"{k}={v:.4f}" for k, v in sorted(run.data.metrics.items()))
            print(f"\nrun {run.info.run_id} {run.info.status}: {metrics}")
        for version in versions:
            print(
                f"\nregistered {version.name} version {version.version} "
                f"from run {version.run_id} ({version.status})"
            )
    assert [r for r in runs if r.info.status == "FINISHED" and r.data.metrics], logs[-4000:]
    assert [v for v in versions if v.status == "READY"], logs[-4000:]

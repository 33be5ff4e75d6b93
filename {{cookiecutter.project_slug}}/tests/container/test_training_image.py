"""The training image, run as the kind overlay's Job runs it, against a real MLflow server.

A local `mlflow server` (SQLite backend, artifacts proxied to a folder) stands in for the
cluster's tracking server; the container reaches it over the host's loopback. Once on the
bundled data, once on a CSV with gaps that DATA_PATH names. Afterwards the server must hold a
finished run with metrics and a READY registered version; both are printed (even without `-s`)
so `nox -s train-image` shows what arrived.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from mlflow.tracking import MlflowClient

from ..mlflow_server import mlflow_server
from ..test_pipeline import mixed_frame
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


def train_in_image(
    engine: docker.DockerClient,
    image: str,
    pod: Pod,
    environment: dict[str, str],
    **extra: Any,
) -> tuple[int, str]:
    """Run the training image as the pod does, with `environment` on top; (exit code, logs)."""
    kwargs = run_kwargs(pod)
    container = engine.containers.run(
        image,
        detach=True,
        network_mode="host",  # the tracking server listens on the host's loopback
        environment=kwargs.pop("environment") | environment,
        **(kwargs | {"ports": {}} | extra),
    )
    try:
        exit_code = container.wait(timeout=TRAIN_SECONDS)["StatusCode"]
        return exit_code, container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)


def test_training_image_logs_a_run_and_registers_a_model(
    engine: docker.DockerClient,
    training_image: str,
    training_pod: Pod,
    tracking_server: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    environment = forwarded_settings() | {"MLFLOW_TRACKING_URI": tracking_server}
    exit_code, logs = train_in_image(engine, training_image, training_pod, environment)
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


def test_training_image_trains_on_the_csv_data_path_names(
    engine: docker.DockerClient,
    training_image: str,
    training_pod: Pod,
    tracking_server: str,
    tmp_path: Path,
) -> None:
    """DATA_PATH names a CSV mounted into the container: numeric and categorical columns with
    gaps, as a team's data arrives."""
    features, label = mixed_frame(300)
    folder = tmp_path / "data"
    folder.mkdir(mode=0o755)
    features.assign(label=label).to_csv(folder / "mixed.csv", index=False)
    (folder / "mixed.csv").chmod(0o644)  # readable by the image's user
    environment = {
        "MLFLOW_TRACKING_URI": tracking_server,
        "DATA_PATH": "/data/mixed.csv",
        "TARGET_COLUMN": "label",
        "MODEL_NAME": "mixed-csv",  # its own registered model: no champion of other features
        "GATE_MIN": "0.5",  # the gate is not under test here; reading the CSV is
    }
    volumes = {str(folder): {"bind": "/data", "mode": "ro"}}
    exit_code, logs = train_in_image(
        engine, training_image, training_pod, environment, volumes=volumes
    )
    assert exit_code == 0, logs[-4000:]
    client = MlflowClient(tracking_server)
    [version] = client.search_model_versions("name = 'mixed-csv'")
    assert version.run_id is not None
    params = client.get_run(version.run_id).data.params
    assert (params["data_source"], params["target_column"]) == ("/data/mixed.csv", "label")
    assert params["features"] == "2"
    assert version.status == "READY"

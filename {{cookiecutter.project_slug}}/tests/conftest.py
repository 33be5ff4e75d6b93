"""Shared fixtures: a throwaway MLflow SQLite store, a model exported by real training, and a
loopback HTTP server for data read by URL."""

from __future__ import annotations

import functools
import itertools
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow.tracking import MlflowClient

from {{ cookiecutter.package_name }}.config import (
    Task,
    TrainSettings,
)
from {{ cookiecutter.package_name }}.train import (
    TrainResult,
    run,
)


@dataclass
class MlflowStore:
    """One SQLite tracking store per test session (creating its tables takes seconds)."""

    root: Path
    _names: Iterator[int] = field(default_factory=itertools.count)

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    def settings(self, **overrides: Any) -> TrainSettings:
        """TrainSettings with a fresh experiment, model name and export folder in this store.

        The experiment is created here so its artifacts land under `root`, not in the cwd.
        Classification unless `task` says otherwise: every bake tests both tasks the same way.
        """
        name = f"test-{next(self._names)}"
        MlflowClient(self.uri).create_experiment(
            name, artifact_location=(self.root / "artifacts" / name).as_uri()
        )
        values: dict[str, Any] = {
            "mlflow_tracking_uri": self.uri,
            "mlflow_experiment_name": name,
            "model_name": name,
            "export_dir": self.root / "exports" / name,
            "data_path": None,
            "target_column": "target",
            "task": Task.CLASSIFICATION,
        }
        return TrainSettings(**(values | overrides))


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> MlflowStore:
    """A SQLite MLflow tracking store and artifact root in a temporary folder."""
    return MlflowStore(tmp_path_factory.mktemp("mlflow"))


@pytest.fixture(scope="session")
def train_settings(mlflow_store: MlflowStore) -> Callable[..., TrainSettings]:
    """Make TrainSettings (keyword overrides) for a fresh experiment and model in the store."""
    return mlflow_store.settings


@pytest.fixture(scope="session")
def tracking_uri(mlflow_store: MlflowStore) -> str:
    """The `sqlite:///...` URI of the session's tracking store."""
    return mlflow_store.uri


@pytest.fixture(scope="session")
def trained(mlflow_store: MlflowStore) -> TrainResult:
    """One real training run on the bundled data with the default model type."""
    return run(mlflow_store.settings())


@pytest.fixture(scope="session")
def exported_model(trained: TrainResult) -> Path:
    """The model folder that run exported (what the serving image copies to /app/model)."""
    assert trained.export_dir is not None, "the default model failed its quality gate"
    return trained.export_dir


@pytest.fixture(scope="session")
def kind_overlay() -> list[dict[str, Any]]:
    """k8s/overlays/kind as the cluster receives it: needs kubectl (fails in CI without it)."""
    if shutil.which("kubectl") is None:
        message = "kubectl is needed to render k8s/overlays/kind"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    overlay = Path(__file__).resolve().parents[1] / "k8s" / "overlays" / "kind"
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, check=True
    )
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """One line per request on stderr is noise in test output."""


@pytest.fixture(scope="session")
def data_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server: (its base URL, the folder it serves). DATA_PATH may be a URL."""
    folder = tmp_path_factory.mktemp("served-data")
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="data-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder
    finally:
        server.shutdown()
        server.server_close()

"""Serving `models:/<name>@champion` from a SQLite store with only the `serve` and `registry`
extras installed (mlflow-skinny, no full MLflow), as a user who serves from the registry does."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.promotion import (
    CHAMPION,
)
from {{ cookiecutter.package_name }}.train import (
    TrainResult,
)

from .waiting import free_port, wait_until_ready

ROOT = Path(__file__).parents[1]
PACKAGE = "{{ cookiecutter.package_name }}"


@pytest.fixture(scope="module")
def registry_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with exactly the locked `serve` and `registry` extras."""
    venv = tmp_path_factory.mktemp("registry") / "venv"
    # uv is on PATH in nox sessions and CI (tests/test_lock.py uses it too).
    subprocess.run(
        ["uv", "sync", "--frozen", "--no-default-groups", "--extra=serve", "--extra=registry"],
        cwd=ROOT,
        env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv)},
        check=True,
        capture_output=True,
        timeout=600,
    )
    return venv


def test_champion_is_served_from_a_sqlite_registry(
    registry_venv: Path, trained: TrainResult, tracking_uri: str, tmp_path: Path
) -> None:
    python = registry_venv / "bin" / "python"
    installed = subprocess.run(
        [python, "-c", "import importlib.util as u; print(bool(u.find_spec('flask')))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert installed.stdout.strip() == "False", "full MLflow (its server) is installed"
    port = free_port()
    env = {
        **os.environ,
        "MODEL_URI": f"models:/{trained.model_name}@{CHAMPION}",
        "MLFLOW_TRACKING_URI": tracking_uri,
        "PORT": str(port),
        "TMPDIR": str(tmp_path),
    }
    log = tmp_path / "serve.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [registry_venv / "bin" / f"{PACKAGE}-serve"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        # Model download and scikit-learn import, on a busy host.
        wait_until_ready(
            f"{url}/readyz",
            timeout=120,
            alive=lambda: server.poll() is None,
            details=lambda: log.read_text()[-3000:],
        )
        with urllib.request.urlopen(f"{url}/metadata", timeout=5) as answer:
            metadata = json.load(answer)
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert (metadata["model_name"], metadata["model_version"]) == (
        trained.model_name,
        trained.model_version,
    )

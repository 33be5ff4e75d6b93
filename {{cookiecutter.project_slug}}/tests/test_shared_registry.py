"""A team's shared registry: a real `mlflow server` holds the champion, trainings gate against
it, and the `-export` entry point takes `models:/<name>@champion` from it into a fresh
EXPORT_DIR, as `MODEL_URI=models:/<name>@champion nox -s build` does. Once more behind
MLflow's basic-auth app: MLflow's own credential variables pass through, a wrong one fails in
one line. The entry points run as subprocesses, exactly as nox and CI run them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from {{ cookiecutter.package_name }}.cli import (
    TrainExit,
)
from {{ cookiecutter.package_name }}.config import (
    PROJECT,
    TrainSettings,
)
from {{ cookiecutter.package_name }}.promotion import (
    CHAMPION,
)
from {{ cookiecutter.package_name }}.tracking import (
    public_uri,
)

from .mlflow_server import ADMIN, mlflow_server

BIN = Path(sys.executable).parent
PACKAGE = "{{ cookiecutter.package_name }}"
PASSWORD = "a-long-test-password-1"  # noqa: S105 - the throwaway server's admin, made here
# The refused run's gate line: its own figure, then the champion's on the same holdout.
FIGURES = re.compile(
    r"(?P<metric>\w+)=(?P<challenger>-?\d+\.\d+); "
    rf"'{CHAMPION}' \(version (?P<version>\d+)\) (?P=metric)=(?P<champion>-?\d+\.\d+)"
)
# The settings these tests decide; whatever else the environment sets (MODEL_TYPE...) stays.
OWN = {name.upper() for name in TrainSettings.model_fields} | {"MODEL_URI"}


def entry_point(name: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `<package>-<name>` with `env` over this environment's unrelated variables."""
    kept = {k: v for k, v in os.environ.items() if k not in OWN and not k.startswith("MLFLOW_")}
    return subprocess.run(
        [str(BIN / f"{PACKAGE}-{name}")],
        env=kept | env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def report(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


def exported(folder: Path) -> dict[str, str]:
    metadata: dict[str, str] = yaml.safe_load((folder / "MLmodel").read_text())["metadata"]
    return metadata


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The team's tracking server and registry, without authentication."""
    with mlflow_server(tmp_path_factory.mktemp("shared-registry")) as url:
        yield url


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The same behind `--app-name basic-auth`."""
    with mlflow_server(tmp_path_factory.mktemp("auth-registry"), admin_password=PASSWORD) as url:
        yield url


@pytest.mark.mlflow_server
def test_the_shared_champion_refuses_a_worse_challenger_and_exports_by_alias(
    shared: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Imported here: a top-level import would sort differently with each package name.
    from tools.images import model_labels, model_runtime

    first = entry_point(
        "train", MLFLOW_TRACKING_URI=shared, EXPORT_DIR=str(tmp_path / "first" / "model")
    )
    assert first.returncode == TrainExit.OK, report(first)
    assert f"alias '{CHAMPION}' -> 1" in first.stdout
    # A tenth of the rows to learn from: the same model type, clearly worse.
    second = entry_point(
        "train",
        MLFLOW_TRACKING_URI=shared,
        EXPORT_DIR=str(tmp_path / "second" / "model"),
        TEST_SIZE="0.9",
    )
    assert second.returncode in {TrainExit.BEATEN, TrainExit.GATE_FAILED}, report(second)
    figures = FIGURES.search(second.stderr)
    assert figures, report(second)
    assert figures["version"] == "1"
    assert float(figures["challenger"]) != float(figures["champion"])
    client = MlflowClient(shared)
    assert client.get_model_version_by_alias(PROJECT, CHAMPION).version == "1"
    tags = client.get_model_version(PROJECT, "2").tags
    recorded = (float(tags["quality_gate_value"]), float(tags["champion_value"]))
    printed = (float(figures["challenger"]), float(figures["champion"]))
    assert recorded == pytest.approx(printed, abs=1e-4)
    assert not (tmp_path / "second").exists(), "a refused version was exported"

    fresh = tmp_path / "fresh" / "model"
    uri = f"models:/{PROJECT}@{CHAMPION}"
    export = entry_point("export", MLFLOW_TRACKING_URI=shared, MODEL_URI=uri, EXPORT_DIR=str(fresh))
    assert export.returncode == TrainExit.OK, report(export)
    run_id = client.get_model_version(PROJECT, "1").run_id
    assert fresh.resolve().name.startswith(".model-v1-"), "not training's export layout"
    assert (exported(fresh)["model_version"], exported(fresh)["run_id"]) == ("1", run_id)
    labels = model_labels(fresh)
    assert (labels["MODEL_NAME"], labels["MODEL_VERSION"]) == (PROJECT, "1")
    assert (labels["MODEL_RUN_ID"], labels["MODEL_REGISTRY_URI"]) == (run_id, shared)
    # The twin was checked again here: kept if it agrees, else named as not served.
    assert (model_runtime(fresh) == "onnx") == ("not ONNX" not in export.stdout), export.stdout
    missing = entry_point(
        "export",
        MLFLOW_TRACKING_URI=shared,
        MODEL_URI=f"models:/{PROJECT}@no-such-alias",
        EXPORT_DIR=str(tmp_path / "missing"),
    )
    assert missing.returncode == TrainExit.TRACKING, report(missing)
    assert missing.stderr.count("\n") == 1, report(missing)
    assert "no-such-alias" in missing.stderr
    with capsys.disabled():  # the figures, shown without -s too
        print(
            f"\nshared registry {shared}: champion version 1; challenger version 2 refused "
            f"(exit {second.returncode}): {figures['metric']}={figures['challenger']} vs the "
            f"champion's {figures['champion']} on the same holdout; exported {uri} -> "
            f"{labels} ({model_runtime(fresh)})"
        )


@pytest.mark.mlflow_server
def test_basic_auth_credentials_pass_through_and_a_wrong_one_fails_in_one_line(
    guarded: str, tmp_path: Path
) -> None:
    login = {"MLFLOW_TRACKING_URI": guarded, "MLFLOW_TRACKING_USERNAME": ADMIN}
    trained = entry_point(
        "train", **login, MLFLOW_TRACKING_PASSWORD=PASSWORD, EXPORT_DIR=str(tmp_path / "trained")
    )
    assert trained.returncode == TrainExit.OK, report(trained)
    uri = f"models:/{PROJECT}@{CHAMPION}"
    fresh = tmp_path / "fresh" / "model"
    export = entry_point(
        "export", **login, MLFLOW_TRACKING_PASSWORD=PASSWORD, MODEL_URI=uri, EXPORT_DIR=str(fresh)
    )
    assert export.returncode == TrainExit.OK, report(export)
    assert exported(fresh)["model_version"] == "1"
    assert exported(fresh)["registry_uri"] == guarded  # the URL, never the credentials

    for name in ("export", "train"):
        refused = entry_point(
            name,
            **login,
            MLFLOW_TRACKING_PASSWORD="wrong",  # noqa: S106
            MODEL_URI=uri,
            EXPORT_DIR=str(tmp_path / "refused"),
        )
        assert refused.returncode == TrainExit.TRACKING, report(refused)
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1, report(refused)
        assert re.match(rf"error: .*{re.escape(guarded)}.*401", lines[0]), lines[0]
        assert "MLFLOW_TRACKING_PASSWORD" in lines[0]  # what to check
        assert "wrong" not in lines[0]
    assert not (tmp_path / "refused").exists()


def test_export_refuses_a_model_uri_that_names_no_registered_version(tmp_path: Path) -> None:
    result = entry_point("export", MODEL_URI="build/model", EXPORT_DIR=str(tmp_path / "model"))
    assert result.returncode == TrainExit.BAD_SETTINGS, report(result)
    assert result.stderr.startswith("error: invalid configuration: MODEL_URI='build/model'")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("uri", "public"),
    [
        ("https://user:secret@mlflow.example.com/?token=t#x", "https://mlflow.example.com/"),
        ("http://mlflow:5000", "http://mlflow:5000"),
        ("sqlite:///mlflow.db", "sqlite:///mlflow.db"),
        ("databricks", "databricks"),
    ],
)
def test_the_registry_label_never_carries_credentials(uri: str, public: str) -> None:
    assert public_uri(uri) == public

"""Training end to end against a real SQLite MLflow store: run, registry, gate, export."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import mlflow
import pytest
import skops.io
import yaml
from mlflow.tracking import MlflowClient

from {{ cookiecutter.package_name }}.config import GateMetric, TrainSettings, load
from {{ cookiecutter.package_name }}.pipeline import HYPERPARAMETERS
from {{ cookiecutter.package_name }}.train import CHAMPION, TrainResult, run

METRICS = {"accuracy", "f1", "roc_auc", "log_loss"}


def test_run_logs_params_metrics_and_plots(trained: TrainResult, tracking_uri: str) -> None:
    client = MlflowClient(tracking_uri)
    run = client.get_run(trained.run_id)
    settings = load(TrainSettings)
    assert run.data.params["model_type"] == settings.model_type.value
    for name, value in HYPERPARAMETERS[settings.model_type].items():
        assert run.data.params[name] == str(value)
    assert run.data.params["test_size"] == "0.2"
    assert run.data.params["random_seed"] == "42"
    assert run.data.params["data_source"] == "sklearn.datasets.load_breast_cancer"
    assert set(run.data.metrics) == METRICS
    assert run.data.metrics == pytest.approx(trained.metrics)
    assert trained.metrics["roc_auc"] > 0.95
    plots = {a.path for a in client.list_artifacts(trained.run_id, "plots")}
    assert plots == {"plots/confusion_matrix.png", "plots/roc_curve.png"}


def test_run_records_train_and_test_data_as_inputs(trained: TrainResult, tracking_uri: str) -> None:
    run = MlflowClient(tracking_uri).get_run(trained.run_id)
    assert run.inputs is not None
    contexts = {}
    for logged in run.inputs.dataset_inputs:
        context = {tag.key: tag.value for tag in logged.tags}["mlflow.data.context"]
        contexts[context] = logged.dataset
    assert set(contexts) == {"training", "testing"}
    profiles = {context: json.loads(str(d.profile))["num_rows"] for context, d in contexts.items()}
    assert profiles == {"training": 455, "testing": 114}  # 569 rows, 20% held out
    assert all(d.name == "breast_cancer" for d in contexts.values())
    assert "target" in str(contexts["training"].schema)


def test_version_is_registered_tagged_and_champion(trained: TrainResult, tracking_uri: str) -> None:
    client = MlflowClient(tracking_uri)
    version = client.get_model_version_by_alias(trained.model_name, CHAMPION)
    assert str(version.version) == trained.model_version
    assert version.run_id == trained.run_id
    assert version.tags["quality_gate"] == "passed"
    assert version.tags["quality_gate_rule"] == "roc_auc >= 0.9"


def test_export_is_a_self_contained_model_naming_its_version(
    trained: TrainResult, exported_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mlmodel = yaml.safe_load((exported_model / "MLmodel").read_text())
    assert mlmodel["metadata"] == {
        "model_name": trained.model_name,
        "model_version": trained.model_version,
        "run_id": trained.run_id,
    }
    assert mlmodel["signature"]["inputs"]
    assert (exported_model / "input_example.json").is_file()
    # Plain skops, with the types MLmodel trusts, is all a server needs.
    flavor = mlmodel["flavors"]["sklearn"]
    model = skops.io.load(
        exported_model / flavor["pickled_model"], trusted=flavor["skops_trusted_types"]
    )
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    pyfunc = mlflow.pyfunc.load_model(str(exported_model))
    example = pyfunc.input_example
    assert list(pyfunc.predict(example)) == list(model.predict(example))
    assert model.predict_proba(example).shape == (len(example), 2)


def test_failed_gate_registers_but_keeps_the_champion(
    train_settings: Callable[..., TrainSettings],
) -> None:
    settings = train_settings()
    first = run(settings)
    assert first.passed
    strict = settings.model_copy(update={"gate_min": 1.0, "gate_metric": GateMetric.ACCURACY})
    second = run(strict)
    assert not second.passed
    assert second.export_dir is None
    client = MlflowClient(settings.mlflow_tracking_uri)
    assert str(client.get_model_version_by_alias(settings.model_name, CHAMPION).version) == "1"
    assert client.get_model_version(settings.model_name, "2").tags["quality_gate"] == "failed"

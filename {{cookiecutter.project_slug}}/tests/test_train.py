"""Training end to end against a real SQLite MLflow store: run, registry, gate, export."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import mlflow
import mlflow.sklearn
import pandas as pd
import pytest
import skops.io
import yaml
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_iris

from {{ cookiecutter.package_name }} import (
    cli,
)
from {{ cookiecutter.package_name }} import (
    train as training,
)
from {{ cookiecutter.package_name }}.config import (
    ModelType,
    Task,
    TrainSettings,
    load,
)
from {{ cookiecutter.package_name }}.evaluate import (
    quality_gate,
)
from {{ cookiecutter.package_name }}.pipeline import (
    HYPERPARAMETERS_BY_TASK,
)
from {{ cookiecutter.package_name }}.promotion import (
    CHAMPION,
)
from {{ cookiecutter.package_name }}.train import (
    TrainResult,
    run,
)

from .test_pipeline import mixed_frame
from .test_train_exit import train_processes

METRICS = {"accuracy", "f1", "roc_auc", "log_loss"}


def test_run_logs_params_metrics_and_plots(trained: TrainResult, tracking_uri: str) -> None:
    client = MlflowClient(tracking_uri)
    run = client.get_run(trained.run_id)
    settings = load(TrainSettings)
    assert run.data.params["model_type"] == settings.model_type.value
    # The `trained` fixture trains a classifier in every bake (conftest), whatever the task.
    for name, value in HYPERPARAMETERS_BY_TASK[Task.CLASSIFICATION][settings.model_type].items():
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


@pytest.mark.parametrize(("value", "passed"), [(0.89, False), (0.9, True), (0.95, True)])
def test_quality_gate_passes_at_the_minimum_and_above(value: float, passed: bool) -> None:
    gate = quality_gate({"roc_auc": value, "accuracy": 0.5}, "roc_auc", 0.9)
    assert (gate.value, gate.passed, gate.rule) == (value, passed, "roc_auc >= 0.9")


def test_version_is_registered_tagged_and_champion(trained: TrainResult, tracking_uri: str) -> None:
    client = MlflowClient(tracking_uri)
    version = client.get_model_version_by_alias(trained.model_name, CHAMPION)
    assert str(version.version) == trained.model_version
    assert version.run_id == trained.run_id
    assert version.tags["quality_gate"] == "passed"
    assert version.tags["quality_gate_rule"] == "roc_auc >= 0.9"


def test_export_is_a_self_contained_model_naming_its_version(
    trained: TrainResult, exported_model: Path, tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    mlmodel = yaml.safe_load((exported_model / "MLmodel").read_text())
    inputs = mlmodel["signature"]["inputs"]
    metadata = dict(mlmodel["metadata"])
    # Each feature's bins for the server's drift scores (tests/test_reference_bins.py).
    assert set(metadata.pop("drift_reference")) == {c["name"] for c in json.loads(inputs)}
    assert metadata == {
        "model_name": trained.model_name,
        "model_version": trained.model_version,
        "run_id": trained.run_id,
        "registry_uri": tracking_uri,  # where that version number means something
        # The pipeline imputes every feature, so each may be null.
        "nullable_features": [column["name"] for column in json.loads(inputs)],
        # The verified ONNX model and its reference rows (see onnx_export.py).
        "onnx": {"model": "model.onnx", "reference": "onnx_reference.json"},
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


def use_settings(monkeypatch: pytest.MonkeyPatch, settings: TrainSettings) -> None:
    """Put `settings` in the environment, as the CLI reads it."""
    for name, value in settings.model_dump().items():
        if value is None:
            monkeypatch.delenv(name.upper(), raising=False)
        else:
            monkeypatch.setenv(name.upper(), str(value))


def test_cli_summarises_then_a_failed_gate_keeps_the_champion(
    train_settings: Callable[..., TrainSettings],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = train_settings()
    use_settings(monkeypatch, settings)
    cli.train()  # passes: returns normally, exit code 0
    out = capsys.readouterr().out
    assert f"registered {settings.model_name} version 1\n" in out
    assert "no 'champion' yet: GATE_MIN alone decides\n" in out
    assert "quality gate passed (roc_auc >= 0.9: roc_auc=" in out
    assert "alias 'champion' -> 1\n" in out
    assert f"exported to {settings.export_dir}\n" in out
    assert re.match(r"run \w+: accuracy=0\.\d{4} f1=.* roc_auc=.* log_loss=", out)

    monkeypatch.setenv("GATE_METRIC", "accuracy")
    monkeypatch.setenv("GATE_MIN", "1.0")
    with pytest.raises(SystemExit) as exited:
        cli.train()
    assert exited.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.fullmatch(
        r"quality gate failed, below GATE_MIN \(accuracy >= 1\.0: accuracy=0\.\d{4}; 'champion' "
        r"\(version 1\) accuracy=0\.\d{4} on the same holdout, GATE_TOLERANCE=0\.0\); "
        r"alias 'champion' not moved",
        err,
    )
    client = MlflowClient(settings.mlflow_tracking_uri)
    champion = client.get_model_version_by_alias(settings.model_name, CHAMPION)
    assert str(champion.version) == "1"
    failed = client.get_model_version(settings.model_name, "2")
    assert failed.tags["quality_gate"] == "failed"
    assert failed.tags["quality_gate_rule"] == "accuracy >= 1.0"
    exported = yaml.safe_load((settings.export_dir / "MLmodel").read_text())
    assert exported["metadata"]["model_version"] == "1"  # the champion's export stays


@pytest.mark.parametrize(
    ("variable", "value", "code", "message"),
    [
        ("MODEL_TYPE", "svm", 2, "error: invalid configuration: MODEL_TYPE='svm': "),
        ("DATA_PATH", "nowhere.csv", 3, "error: DATA_PATH=nowhere.csv does not exist"),
    ],
)
def test_cli_rejects_bad_input_with_its_exit_code(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    code: int,
    message: str,
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as exited:
        cli.train()
    assert exited.value.code == code
    assert capsys.readouterr().err.startswith(message)


@pytest.mark.parametrize(
    "model_type", [m for m in ModelType if m != load(TrainSettings).model_type]
)
def test_other_model_types_train_register_and_export(
    train_settings: Callable[..., TrainSettings],
    model_type: ModelType,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = train_settings(model_type=model_type)
    result = run(settings)
    assert result.gate.passed, result.metrics
    params = MlflowClient(settings.mlflow_tracking_uri).get_run(result.run_id).data.params
    assert params["model_type"] == model_type.value
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    model = mlflow.sklearn.load_model(str(settings.export_dir))
    assert (
        type(model.named_steps["model"]).__name__
        == {
            ModelType.RANDOM_FOREST: "RandomForestClassifier",
            ModelType.HIST_GRADIENT_BOOSTING: "HistGradientBoostingClassifier",
            ModelType.LOGISTIC_REGRESSION: "LogisticRegression",
        }[model_type]
    )


def test_user_csv_with_categories_and_three_classes(
    train_settings: Callable[..., TrainSettings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    iris = load_iris(as_frame=True)
    frame = iris.frame.assign(
        species=iris.target_names[iris.target],
        petal_size=pd.cut(iris.frame["petal length (cm)"], 3, labels=["s", "m", "l"]),
    ).drop(columns="target")
    csv = tmp_path / "iris.csv"
    frame.to_csv(csv, index=False)
    settings = train_settings(
        data_path=csv, target_column="species", model_type=ModelType.LOGISTIC_REGRESSION
    )
    result = run(settings)
    assert result.gate.passed
    assert result.metrics["f1"] > 0.85
    run_data = MlflowClient(settings.mlflow_tracking_uri).get_run(result.run_id)
    assert run_data.data.params["data_source"] == str(csv)
    assert run_data.inputs is not None
    logged = run_data.inputs.dataset_inputs[0].dataset
    assert logged.name == "iris"
    assert str(csv) in str(logged.source)
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    model = mlflow.sklearn.load_model(str(settings.export_dir))
    assert set(model.classes_) == {"setosa", "versicolor", "virginica"}
    assert model.predict_proba(frame.drop(columns="species").head(3)).shape == (3, 3)


def test_an_unexpected_error_is_one_line_with_where_it_happened(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*_: object) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(training, "run", broken)
    with pytest.raises(SystemExit) as exited:
        cli.train()
    assert exited.value.code == cli.TrainExit.BUG
    err = capsys.readouterr().err
    assert re.fullmatch(r"error: unexpected KeyError at .*test_train\.py:\d+: 'a bug'\n", err)


def test_a_csv_url_with_gaps_trains_through_the_entry_point(
    train_settings: Callable[..., TrainSettings], data_server: tuple[str, Path]
) -> None:
    base, folder = data_server
    features, label = mixed_frame(300)  # numeric and categorical columns, gaps in both
    features.assign(label=label).to_csv(folder / "mixed-train.csv", index=False)
    url = f"{base}/mixed-train.csv"
    settings = train_settings(data_path=url, target_column="label", gate_min=0.5)
    [exited] = train_processes(settings, {"url": {}}).values()
    assert exited.code == 0, exited.stderr
    client = MlflowClient(settings.mlflow_tracking_uri)
    [experiment] = [e for e in client.search_experiments() if e.name == settings.model_name]
    [run_data] = client.search_runs([experiment.experiment_id])
    assert run_data.data.params["data_source"] == url
    assert run_data.data.params["features"] == "2"
    assert run_data.inputs is not None
    assert url in str(run_data.inputs.dataset_inputs[0].dataset.source)

"""Training settings come from environment variables; bad values fail with one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.config import (
    DEFAULT_GATE,
    TASK,
    ConfigError,
    GateMetric,
    ModelType,
    Task,
    TrainSettings,
    load,
)

TRAIN_VARIABLES = [name.upper() for name in TrainSettings.model_fields]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TRAIN_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_defaults_train_the_bundled_data_into_a_local_sqlite_store() -> None:
    settings = load(TrainSettings)
    assert settings.mlflow_tracking_uri == "sqlite:///mlflow.db"
    project = "{{ cookiecutter.project_slug }}"
    assert settings.mlflow_experiment_name == project
    assert settings.model_name == project
    assert settings.model_type is ModelType("{{ cookiecutter.model }}")
    assert settings.data_path is None
    assert (settings.test_size, settings.random_seed) == (0.2, 42)
    assert settings.task is TASK is Task("{{ cookiecutter.task }}")
    assert (settings.gate_metric, settings.gate_min) == DEFAULT_GATE[TASK]
    assert settings.gate_tolerance == 0
    assert settings.export_dir == Path("build/model")


@pytest.mark.parametrize(
    ("task", "gate"),
    [("classification", (GateMetric.ROC_AUC, 0.9)), ("regression", (GateMetric.R2, 0.3))],
)
def test_each_task_has_its_default_gate(
    monkeypatch: pytest.MonkeyPatch, task: str, gate: tuple[GateMetric, float]
) -> None:
    monkeypatch.setenv("TASK", task)
    settings = load(TrainSettings)
    assert (settings.gate_metric, settings.gate_min) == gate == DEFAULT_GATE[Task(task)]


def test_an_error_metric_gates_from_above(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASK", "regression")
    monkeypatch.setenv("GATE_METRIC", "rmse")
    with pytest.raises(ConfigError, match=r"GATE_MIN=None: .*set GATE_MIN, the largest rmse"):
        load(TrainSettings)
    monkeypatch.setenv("GATE_MIN", "55")
    settings = load(TrainSettings)
    assert (settings.gate_metric, settings.gate_min) == (GateMetric.RMSE, 55)
    assert not settings.gate_metric.higher_is_better


def test_environment_variables_override_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASK", "classification")
    monkeypatch.setenv("MODEL_TYPE", "random_forest")
    monkeypatch.setenv("DATA_PATH", "data/churn.csv")
    monkeypatch.setenv("TARGET_COLUMN", "churned")
    monkeypatch.setenv("GATE_METRIC", "f1")
    monkeypatch.setenv("GATE_MIN", "0.75")
    settings = load(TrainSettings)
    assert settings.model_type is ModelType.RANDOM_FOREST
    assert settings.data_path == "data/churn.csv"
    assert settings.target_column == "churned"
    assert (settings.gate_metric, settings.gate_min) == (GateMetric.F1, 0.75)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MODEL_TYPE", "svm"),
        ("TEST_SIZE", "1.5"),
        ("GATE_MIN", "2"),
        ("GATE_METRIC", "log_loss"),
        ("GATE_METRIC", "r2" if TASK is Task.CLASSIFICATION else "roc_auc"),  # the other task's
        ("GATE_TOLERANCE", "-0.1"),
        ("TASK", "ranking"),
        ("RANDOM_SEED", "-1"),
    ],
)
def test_bad_values_name_the_variable_and_value(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as error:
        load(TrainSettings)
    message = str(error.value)
    assert message.startswith(f"invalid configuration: {variable}={value!r}: ")
    assert "\n" not in message


def test_every_problem_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_TYPE", "svm")
    monkeypatch.setenv("TEST_SIZE", "0")
    with pytest.raises(ConfigError, match=r"MODEL_TYPE='svm': .*; TEST_SIZE='0': "):
        load(TrainSettings)


@pytest.mark.parametrize("name", ["team/churn", "churn:v2", "..", ".", "..hidden", "  "])
def test_model_names_mlflow_cannot_register_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv("MODEL_NAME", name)
    with pytest.raises(ConfigError, match=f"MODEL_NAME={name!r}: .*cannot contain '/' or ':'"):
        load(TrainSettings)


@pytest.mark.parametrize("name", ["churn", "Churn Model v2", "a.b", "x-y_z"])
def test_other_model_names_are_accepted(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("MODEL_NAME", name)
    assert load(TrainSettings).model_name == name

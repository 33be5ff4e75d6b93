"""Champion / challenger against a real SQLite MLflow store: the alias moves only for a version
that clears GATE_MIN and is not worse than the champion on the same held-out rows.

On the bundled diabetes data (seed 42) the linear model scores r2 0.45 and histogram gradient
boosting 0.34: both clear the default floor (0.3), so only the comparison tells them apart.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from {{ cookiecutter.package_name }}.cli import (
    TrainExit,
)
from {{ cookiecutter.package_name }}.config import (
    GateMetric,
    ModelType,
    Task,
    TrainSettings,
)
from {{ cookiecutter.package_name }}.evaluate import (
    Champion,
    Outcome,
    quality_gate,
)
from {{ cookiecutter.package_name }}.exports import (
    locked,
)
from {{ cookiecutter.package_name }}.promotion import (
    CHAMPION,
)
from {{ cookiecutter.package_name }}.train import (
    run,
)

LINEAR, BOOSTING = ModelType.LOGISTIC_REGRESSION, ModelType.HIST_GRADIENT_BOOSTING
PACKAGE = "{{ cookiecutter.package_name }}"
ENTRY_POINT = Path(sys.executable).with_name(f"{PACKAGE}-train")


def regression(make: Callable[..., TrainSettings], **overrides: object) -> TrainSettings:
    return make(task=Task.REGRESSION, **overrides)


def champion_version(settings: TrainSettings) -> str:
    client = MlflowClient(settings.mlflow_tracking_uri)
    return str(client.get_model_version_by_alias(settings.model_name, CHAMPION).version)


def environment(settings: TrainSettings) -> dict[str, str]:
    """This environment with `settings` as the variables the entry point reads."""
    variables = {name.upper(): value for name, value in settings.model_dump().items()}
    kept = {k: v for k, v in os.environ.items() if k not in variables}
    return kept | {name: str(value) for name, value in variables.items() if value is not None}


def start(settings: TrainSettings, model_type: ModelType) -> subprocess.Popen[str]:
    """The entry point training `model_type` under `settings`, in the background."""
    return subprocess.Popen(
        [str(ENTRY_POINT)],
        env=environment(settings) | {"MODEL_TYPE": model_type.value},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def exported_version(settings: TrainSettings) -> str:
    mlmodel = yaml.safe_load((settings.export_dir / "MLmodel").read_text())
    return str(mlmodel["metadata"]["model_version"])


def test_the_first_run_has_no_champion_to_beat(
    train_settings: Callable[..., TrainSettings], tracking_uri: str
) -> None:
    settings = regression(train_settings, model_type=BOOSTING)
    result = run(settings)
    assert result.gate.champion is None
    assert result.gate.passed
    assert champion_version(settings) == result.model_version == "1"
    tags = MlflowClient(tracking_uri).get_model_version(settings.model_name, "1").tags
    assert tags["quality_gate"] == "passed"
    assert "champion_version" not in tags


def test_a_better_model_takes_the_alias(
    train_settings: Callable[..., TrainSettings], tracking_uri: str
) -> None:
    first = regression(train_settings, model_type=BOOSTING)
    weaker = run(first)
    better = run(first.model_copy(update={"model_type": LINEAR}))
    assert better.gate.champion is not None
    assert better.gate.champion.version == "1"
    assert better.gate.champion.value == pytest.approx(weaker.metrics["r2"])
    assert better.gate.outcome is Outcome.PASSED
    assert champion_version(first) == "2"
    logged = MlflowClient(tracking_uri).get_run(better.run_id).data
    assert logged.metrics["champion_r2"] == pytest.approx(weaker.metrics["r2"])
    assert logged.tags["champion_version"] == "1"
    assert better.export_dir is not None


def test_a_worse_model_that_clears_the_floor_does_not(
    train_settings: Callable[..., TrainSettings], tracking_uri: str
) -> None:
    settings = regression(train_settings, model_type=LINEAR)
    best = run(settings)
    worse = run(settings.model_copy(update={"model_type": BOOSTING}))
    assert worse.gate.cleared_floor
    assert worse.gate.outcome is Outcome.BEATEN
    assert worse.export_dir is None
    assert champion_version(settings) == "1"
    tags = MlflowClient(tracking_uri).get_model_version(settings.model_name, "2").tags
    assert tags["quality_gate"] == "beaten_by_champion"
    assert tags["champion_version"] == "1"
    assert float(tags["champion_value"]) == pytest.approx(best.metrics["r2"], abs=1e-6)
    assert float(tags["quality_gate_value"]) == pytest.approx(worse.metrics["r2"], abs=1e-6)

    # The same model passes when GATE_TOLERANCE allows the difference.
    tolerant = run(settings.model_copy(update={"model_type": BOOSTING, "gate_tolerance": 0.2}))
    assert tolerant.gate.passed
    assert champion_version(settings) == "3"


def test_the_cli_tells_beaten_from_below_the_floor(
    train_settings: Callable[..., TrainSettings],
) -> None:
    settings = regression(train_settings, model_type=LINEAR)
    run(settings)
    beaten, below = (
        subprocess.run(
            [str(ENTRY_POINT)],
            env=environment(settings) | {"MODEL_TYPE": BOOSTING.value} | extra,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        for extra in ({}, {"GATE_MIN": "0.4"})
    )
    assert beaten.returncode == TrainExit.BEATEN, beaten.stderr
    assert re.search(
        r"quality gate failed, beaten by the champion \(r2 >= 0\.3: r2=0\.3\d+; 'champion' "
        r"\(version 1\) r2=0\.45\d+ on the same holdout, GATE_TOLERANCE=0\.0\); "
        r"alias 'champion' not moved",
        beaten.stderr,
    ), beaten.stderr
    assert below.returncode == TrainExit.GATE_FAILED, below.stderr
    assert "quality gate failed, below GATE_MIN (r2 >= 0.4: " in below.stderr
    assert champion_version(settings) == "1"


def test_two_trainings_at_once_leave_the_better_as_champion_and_export(
    train_settings: Callable[..., TrainSettings], tracking_uri: str
) -> None:
    # Whichever order they reach the lock in, the linear model ends as champion: first, and
    # the boosting one is beaten by it; or second, and it beats the boosting one.
    settings = regression(train_settings)
    processes = {model_type: start(settings, model_type) for model_type in (LINEAR, BOOSTING)}
    stderr = {model_type: p.communicate(timeout=600)[1] for model_type, p in processes.items()}
    codes = {model_type: p.returncode for model_type, p in processes.items()}
    client = MlflowClient(tracking_uri)
    versions = {
        client.get_run(str(v.run_id)).data.params["model_type"]: v
        for v in client.search_model_versions(f"name='{settings.model_name}'")
    }
    linear, boosting = versions[LINEAR.value], versions[BOOSTING.value]
    assert codes[LINEAR] == TrainExit.OK, stderr
    assert champion_version(settings) == exported_version(settings) == str(linear.version)
    if codes[BOOSTING] == TrainExit.BEATEN:  # gated against the linear model: the lock's order
        assert boosting.tags["quality_gate"] == "beaten_by_champion"
        assert boosting.tags["champion_version"] == str(linear.version)
    else:  # it went first, and the linear model was gated against it
        assert codes[BOOSTING] == TrainExit.OK, stderr
        assert linear.tags["champion_version"] == str(boosting.version)
    assert linear.tags["quality_gate"] == "passed"


@pytest.mark.parametrize(
    ("waiting", "elsewhere", "code", "verdict"),
    [
        (BOOSTING, LINEAR, TrainExit.BEATEN, "beaten_by_champion"),
        (LINEAR, BOOSTING, TrainExit.OK, "passed"),
    ],
    ids=["then-beaten", "still-better"],
)
def test_a_champion_moved_while_a_training_waits_is_the_one_it_is_gated_against(
    train_settings: Callable[..., TrainSettings],
    tracking_uri: str,
    tmp_path: Path,
    waiting: ModelType,
    elsewhere: ModelType,
    code: TrainExit,
    verdict: str,
) -> None:
    # Another machine, sharing the registry but not EXPORT_DIR, trains while this one waits
    # for EXPORT_DIR's lock (held here) with a verdict from before: no champion to beat.
    settings = regression(train_settings)
    client = MlflowClient(tracking_uri)
    with locked(settings.export_dir, timeout=5):
        process = start(settings, waiting)
        first_look = {}
        while "quality_gate" not in first_look:
            assert process.poll() is None, process.communicate()
            time.sleep(0.5)
            found = client.search_model_versions(f"name='{settings.model_name}'")
            first_look = found[0].tags if found else {}
        assert first_look["quality_gate"] == "passed"
        assert "champion_version" not in first_look
        other = run(settings.model_copy(update={"model_type": elsewhere, "export_dir": tmp_path}))
        assert champion_version(settings) == other.model_version == "2"
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == code, stderr
    tags = client.get_model_version(settings.model_name, "1").tags
    assert tags["quality_gate"] == verdict
    assert tags["champion_version"] == "2"
    assert float(tags["champion_value"]) == pytest.approx(other.metrics["r2"], abs=1e-6)
    if code == TrainExit.OK:
        assert champion_version(settings) == exported_version(settings) == "1"
    else:
        assert champion_version(settings) == "2"
        assert not settings.export_dir.exists()  # nothing exported here


def test_a_champion_with_other_features_is_compared_by_the_floor_alone(
    train_settings: Callable[..., TrainSettings],
) -> None:
    classifier = train_settings()  # breast cancer: other features, a class as output
    run(classifier)
    regressor = {"task": Task.REGRESSION, "gate_metric": GateMetric.R2, "gate_min": 0.3}
    result = run(classifier.model_copy(update=regressor))
    assert result.gate.champion == Champion("1", None)
    assert result.gate.passed
    assert champion_version(classifier) == "2"


@pytest.mark.parametrize(
    ("metric", "value", "champion", "tolerance", "outcome"),
    [
        ("r2", 0.5, 0.5, 0.0, Outcome.PASSED),  # a tie is not worse
        ("r2", 0.49, 0.5, 0.0, Outcome.BEATEN),
        ("r2", 0.49, 0.5, 0.02, Outcome.PASSED),
        ("r2", 0.2, 0.1, 0.0, Outcome.BELOW_FLOOR),  # the floor first
        ("rmse", 40.0, 50.0, 0.0, Outcome.PASSED),  # lower error is better
        ("rmse", 51.0, 50.0, 0.0, Outcome.BEATEN),
        ("rmse", 61.0, 50.0, 20.0, Outcome.BELOW_FLOOR),  # rmse <= 60 is the floor here
    ],
)
def test_the_comparison_follows_the_metric_direction(
    metric: str, value: float, champion: float, tolerance: float, outcome: Outcome
) -> None:
    minimum = 60.0 if metric == "rmse" else 0.3
    gate = quality_gate({metric: value}, metric, minimum, Champion("1", champion), tolerance)
    assert gate.outcome is outcome

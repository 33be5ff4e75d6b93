"""Settings, read from environment variables and validated once at start.

Every setting is an environment variable of the same name in upper case
(`MODEL_URI`, `GATE_MIN`, ...), so containers, CI and Kubernetes configure the
project the same way. A bad value stops the program with one line per problem
naming the variable, the value and what would be right.
"""

from __future__ import annotations

import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT = "{{ cookiecutter.project_slug }}"


class ModelType(StrEnum):
    """The scikit-learn estimators the training pipeline can build."""

    LOGISTIC_REGRESSION = "logistic_regression"
    RANDOM_FOREST = "random_forest"
    HIST_GRADIENT_BOOSTING = "hist_gradient_boosting"


class Task(StrEnum):
    """What the model predicts: a class (classification) or a number (regression)."""

    CLASSIFICATION = "classification"
    REGRESSION = "regression"


class GateMetric(StrEnum):
    """Test-set metrics the quality gate can use; each belongs to one task."""

    ACCURACY = "accuracy"
    F1 = "f1"
    ROC_AUC = "roc_auc"
    R2 = "r2"
    RMSE = "rmse"
    MAE = "mae"

    @property
    def task(self) -> Task:
        return Task.REGRESSION if self in _REGRESSION_METRICS else Task.CLASSIFICATION

    @property
    def higher_is_better(self) -> bool:
        """Errors (RMSE, MAE) are better lower; scores and R² higher."""
        return self not in {GateMetric.RMSE, GateMetric.MAE}

    @property
    def bounds(self) -> tuple[float | None, float | None]:
        """The values the metric can take (None: unbounded), which GATE_MIN must respect."""
        if self is GateMetric.R2:
            return (None, 1.0)
        return (0.0, None) if not self.higher_is_better else (0.0, 1.0)


_REGRESSION_METRICS = frozenset({GateMetric.R2, GateMetric.RMSE, GateMetric.MAE})
# The gate each task uses unless GATE_METRIC / GATE_MIN say otherwise: the one home of both.
DEFAULT_GATE: dict[Task, tuple[GateMetric, float]] = {
    Task.CLASSIFICATION: (GateMetric.ROC_AUC, 0.9),
    Task.REGRESSION: (GateMetric.R2, 0.3),
}
TASK = Task("{{ cookiecutter.task }}")  # the project's answer; TASK in the environment overrides


class _Settings(BaseSettings):
    # `model_*` names are ours, not pydantic's; env vars match field names case-insensitively.
    model_config = SettingsConfigDict(frozen=True, extra="ignore", protected_namespaces=())


class TrainSettings(_Settings):
    """What `{{ cookiecutter.package_name }}-train` reads."""

    mlflow_tracking_uri: str = Field(default="sqlite:///mlflow.db", min_length=1)
    mlflow_experiment_name: str = Field(default=PROJECT, min_length=1)
    task: Task = TASK
    # A CSV file, or a URL pandas reads (https://; s3://, gs://... with their fsspec package).
    data_path: str | None = Field(default=None, min_length=1)  # unset: the bundled data
    target_column: str = Field(default="target", min_length=1)
    model_type: ModelType = ModelType("{{ cookiecutter.model }}")
    model_name: str = Field(default=PROJECT, min_length=1)  # registered model name in MLflow
    test_size: float = Field(default=0.2, gt=0, lt=1)
    random_seed: int = Field(default=42, ge=0)
    # Unset: DEFAULT_GATE of the task. GATE_MIN is a floor, or a ceiling for an error metric.
    gate_metric: GateMetric = Field(default=None, validate_default=True)
    gate_min: float = Field(default=None, validate_default=True)
    # How much worse than the current champion (in GATE_METRIC units) a new version may be.
    gate_tolerance: float = Field(default=0.0, ge=0)
    export_dir: Path = Path("build/model")
    # How long a training waits for another one exporting to the same EXPORT_DIR.
    export_lock_seconds: float = Field(default=600, gt=0)

    @field_validator("data_path", mode="before")
    @classmethod
    def _location_text(cls, location: Any) -> Any:
        return os.fspath(location) if isinstance(location, os.PathLike) else location

    @field_validator("gate_metric", mode="before")
    @classmethod
    def _default_metric(cls, metric: Any, info: ValidationInfo) -> Any:
        return DEFAULT_GATE[info.data.get("task", TASK)][0] if metric is None else metric

    @field_validator("gate_metric")
    @classmethod
    def _metric_of_task(cls, metric: GateMetric, info: ValidationInfo) -> GateMetric:
        task = info.data.get("task")
        if task is not None and metric.task is not task:
            allowed = ", ".join(m.value for m in GateMetric if m.task is task)
            raise ValueError(f"TASK={task.value} is gated by one of {allowed}")
        return metric

    @field_validator("gate_min", mode="before")
    @classmethod
    def _default_min(cls, minimum: Any, info: ValidationInfo) -> Any:
        if minimum is not None:
            return minimum
        metric = info.data.get("gate_metric")
        if metric is not None and not metric.higher_is_better:
            # An error is in the target's units: no default fits every data set.
            raise ValueError(f"set GATE_MIN, the largest {metric.value} that passes")
        return DEFAULT_GATE[metric.task if metric else info.data.get("task", TASK)][1]

    @field_validator("gate_min")
    @classmethod
    def _within_metric(cls, minimum: float, info: ValidationInfo) -> float:
        metric = info.data.get("gate_metric")
        if metric is None:
            return minimum
        low, high = metric.bounds
        if (low is not None and minimum < low) or (high is not None and minimum > high):
            span = f"{'-inf' if low is None else low} to {'inf' if high is None else high}"
            raise ValueError(f"{metric.value} takes values from {span}")
        return minimum

    @field_validator("model_name")
    @classmethod
    def _registrable(cls, name: str) -> str:
        # MLflow's own rule, checked before training rather than after it, when registering.
        if any(c in name for c in "/:") or name.strip(" .") == "" or name.startswith(".."):
            raise ValueError("a registered model name cannot contain '/' or ':', nor be dots")
        return name


# A registered version: by alias (models:/<name>@champion) or by number (models:/<name>/3).
REGISTERED_URI = re.compile(r"models:/(?P<name>[^/@:]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))")
_TRAIN_FIELDS = TrainSettings.model_fields


class ExportSettings(_Settings):
    """What the `-export` entry point reads: a registered version, and where to export it as
    training does (tracking store, EXPORT_DIR and its lock as in TrainSettings)."""

    model_uri: str
    mlflow_tracking_uri: str = Field(
        default=_TRAIN_FIELDS["mlflow_tracking_uri"].default, min_length=1
    )
    export_dir: Path = _TRAIN_FIELDS["export_dir"].default
    export_lock_seconds: float = Field(default=_TRAIN_FIELDS["export_lock_seconds"].default, gt=0)

    @field_validator("model_uri")
    @classmethod
    def _registered(cls, uri: str) -> str:
        if REGISTERED_URI.fullmatch(uri) is None:
            raise ValueError("a registered version: models:/<name>@<alias> or models:/<name>/<n>")
        return uri


class ServeSettings(_Settings):
    """What `{{ cookiecutter.package_name }}-serve` reads."""

    # `default=` by keyword: mypy then sees the fields as optional in ServeSettings(...).
    model_uri: str = Field(default="build/model", min_length=1)  # folder or models:/<name>@<alias>
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_batch_size: int = Field(default=1000, ge=1)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    # Kubernetes waits terminationGracePeriodSeconds; draining must finish well before it.
    drain_seconds: int = Field(default=10, ge=0, le=300)
    # Slow or silent clients: a request's headers, then its body, must arrive within these.
    # Granian's header read timeout (milliseconds, at most 60 s) also closes a connection
    # idle between requests: it is the keep-alive timeout too.
    header_timeout_seconds: float = Field(default=10, ge=0.001, le=60)
    body_timeout_seconds: float = Field(default=30, gt=0, le=600)
    # Open connections at once (Granian's backpressure); more wait in the listen backlog.
    # Each may hold a body of up to MAX_BODY_BYTES: 256 x ~1.4 MB stays under the pod's memory.
    max_connections: int = Field(default=256, ge=1, le=100_000)
    # Gone: set, it stops the server with one line saying what took its place.
    keep_alive_seconds: str | None = None
    # FastAPI's native OpenTelemetry (spans, metrics, logs to the globally configured
    # providers, e.g. under `opentelemetry-instrument`). Off by default: its per-request check
    # costs ~10% of a 1-row request, and /metrics already gives Prometheus the figures.
    otel_tracing: bool = False

    @field_validator("keep_alive_seconds")
    @classmethod
    def _keep_alive_is_gone(cls, value: str | None) -> None:
        if value is not None:
            raise ValueError(
                "no longer read: idle connections close after HEADER_TIMEOUT_SECONDS "
                "(Granian has no separate keep-alive timeout); unset it"
            )


class ConfigError(ValueError):
    """Raised with one readable line per bad environment variable."""


S = TypeVar("S", bound=_Settings)


def load(settings: type[S]) -> S:
    """Read and validate `settings` from the environment, or raise ConfigError."""
    try:
        return settings()
    except ValidationError as error:
        lines = [
            f"{'.'.join(map(str, e['loc'])).upper()}={e.get('input')!r}: {e['msg']}"
            for e in error.errors()
        ]
        raise ConfigError("invalid configuration: " + "; ".join(lines)) from None


def redacted(location: str) -> str:
    """`location` with any password in it left out, for messages and logged parameters."""
    parts = urlsplit(location)
    if parts.password is None:
        return location
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))

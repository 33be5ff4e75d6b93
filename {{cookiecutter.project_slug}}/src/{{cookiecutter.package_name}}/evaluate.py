"""Test-set predictions of a fitted model, made once, its metrics, and the quality gate.

The gate has two parts: the floor (GATE_MIN, a ceiling for an error metric) and, when a
`champion` exists, the challenge: the new version must not be worse than the champion, scored
on the same held-out rows, by more than GATE_TOLERANCE.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import is_classifier
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)
from sklearn.pipeline import Pipeline

from .config import GateMetric


@dataclass(frozen=True)
class Holdout:
    """True targets and the model's predictions on them: what the metrics and plots read
    (`proba` and `classes` are None for a regressor)."""

    y_true: pd.Series
    predicted: np.ndarray[Any, Any]
    proba: np.ndarray[Any, Any] | None = None
    classes: np.ndarray[Any, Any] | None = None

    @classmethod
    def of(cls, model: Pipeline, x_test: pd.DataFrame, y_test: pd.Series) -> Holdout:
        """Predict `x_test` once (labels and probabilities, or numbers)."""
        predicted = np.asarray(model.predict(x_test))
        if not is_classifier(model):
            return cls(y_test, predicted)
        return cls(
            y_test, predicted, np.asarray(model.predict_proba(x_test)), np.asarray(model.classes_)
        )


def metrics(holdout: Holdout) -> dict[str, float]:
    """Classifiers: accuracy, f1, roc_auc and log_loss (f1 macro and roc_auc one-vs-rest when
    multiclass). Regressors: rmse, mae and r2."""
    y_true, proba, classes = holdout.y_true, holdout.proba, holdout.classes
    if proba is None or classes is None:
        return {
            "rmse": float(np.sqrt(mean_squared_error(y_true, holdout.predicted))),
            "mae": float(mean_absolute_error(y_true, holdout.predicted)),
            "r2": float(r2_score(y_true, holdout.predicted)),
        }
    if len(classes) == 2:
        f1 = f1_score(y_true, holdout.predicted, pos_label=classes[1])
        auc = roc_auc_score(y_true, proba[:, 1])
    else:
        f1 = f1_score(y_true, holdout.predicted, average="macro")
        auc = roc_auc_score(y_true, proba, multi_class="ovr", labels=classes)
    return {
        "accuracy": float(accuracy_score(y_true, holdout.predicted)),
        "f1": float(f1),
        "roc_auc": float(auc),
        "log_loss": float(log_loss(y_true, proba, labels=classes)),
    }


class Outcome(StrEnum):
    """The gate's verdict, as tagged on the version (`quality_gate`)."""

    PASSED = "passed"
    BELOW_FLOOR = "failed"  # the tag the floor alone always gave
    BEATEN = "beaten_by_champion"


@dataclass(frozen=True)
class Champion:
    """The current champion, scored on the new run's holdout (None: its schema differs)."""

    version: str
    value: float | None


@dataclass(frozen=True)
class GateResult:
    """The quality gate's verdict on one run, decided once by `quality_gate`."""

    metric: GateMetric
    minimum: float
    value: float
    champion: Champion | None = None
    tolerance: float = 0.0

    @property
    def cleared_floor(self) -> bool:
        if self.metric.higher_is_better:
            return self.value >= self.minimum
        return self.value <= self.minimum

    @property
    def beaten(self) -> bool:
        """Worse than the champion by more than the tolerance (never, with no comparison)."""
        if self.champion is None or self.champion.value is None:
            return False
        margin = self.value - self.champion.value
        worse_by = -margin if self.metric.higher_is_better else margin
        return worse_by > self.tolerance

    @property
    def outcome(self) -> Outcome:
        if not self.cleared_floor:
            return Outcome.BELOW_FLOOR
        return Outcome.BEATEN if self.beaten else Outcome.PASSED

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED

    @property
    def rule(self) -> str:
        return f"{self.metric} {'>=' if self.metric.higher_is_better else '<='} {self.minimum}"


def quality_gate(
    scores: dict[str, float],
    metric: str,
    minimum: float,
    champion: Champion | None = None,
    tolerance: float = 0.0,
) -> GateResult:
    """The verdict on `scores`: GATE_METRIC against GATE_MIN, then against `champion`."""
    gate_metric = GateMetric(metric)
    return GateResult(gate_metric, minimum, scores[gate_metric], champion, tolerance)

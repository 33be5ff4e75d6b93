"""Test-set predictions of a fitted classifier, made once, its metrics, and the quality gate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline


@dataclass(frozen=True)
class Holdout:
    """True labels and the model's predictions on them: what the metrics and plots read."""

    y_true: pd.Series
    predicted: np.ndarray[Any, Any]
    proba: np.ndarray[Any, Any]
    classes: np.ndarray[Any, Any]

    @classmethod
    def of(cls, model: Pipeline, x_test: pd.DataFrame, y_test: pd.Series) -> Holdout:
        """Predict `x_test` once (labels and probabilities)."""
        return cls(
            y_test,
            np.asarray(model.predict(x_test)),
            np.asarray(model.predict_proba(x_test)),
            np.asarray(model.classes_),
        )


def metrics(holdout: Holdout) -> dict[str, float]:
    """accuracy, f1, roc_auc and log_loss; f1 is macro and roc_auc one-vs-rest for multiclass."""
    y_true, proba, classes = holdout.y_true, holdout.proba, holdout.classes
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


@dataclass(frozen=True)
class GateResult:
    """The quality gate's verdict on one run, decided once by `quality_gate`."""

    metric: str
    minimum: float
    value: float
    passed: bool

    @property
    def rule(self) -> str:
        return f"{self.metric} >= {self.minimum}"


def quality_gate(scores: dict[str, float], metric: str, minimum: float) -> GateResult:
    """Pass when the test-set `metric` (GATE_METRIC, higher is better) is at least `minimum`."""
    value = scores[metric]
    return GateResult(metric, minimum, value, passed=value >= minimum)

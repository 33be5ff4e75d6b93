"""Test-set metrics for a fitted classifier, binary or multiclass."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline


def metrics(model: Pipeline, x_test: pd.DataFrame, y_test: pd.Series) -> dict[str, float]:
    """accuracy, f1, roc_auc and log_loss; f1 is macro and roc_auc one-vs-rest for multiclass."""
    classes = model.classes_
    predicted = model.predict(x_test)
    proba = np.asarray(model.predict_proba(x_test))
    if len(classes) == 2:
        f1 = f1_score(y_test, predicted, pos_label=classes[1])
        auc = roc_auc_score(y_test, proba[:, 1])
    else:
        f1 = f1_score(y_test, predicted, average="macro")
        auc = roc_auc_score(y_test, proba, multi_class="ovr", labels=classes)
    return {
        "accuracy": float(accuracy_score(y_test, predicted)),
        "f1": float(f1),
        "roc_auc": float(auc),
        "log_loss": float(log_loss(y_test, proba, labels=classes)),
    }

"""Figures logged with each run: the confusion matrix and the ROC curve(s) on the test set."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on servers and in CI

from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay

from .evaluate import Holdout


def confusion_matrix(holdout: Holdout) -> Figure:
    """The test-set confusion matrix, counts per (true, predicted) class."""
    figure = Figure(figsize=(5, 4.5), layout="constrained")
    ax = figure.add_subplot()
    ConfusionMatrixDisplay.from_predictions(
        holdout.y_true, holdout.predicted, labels=holdout.classes, ax=ax, colorbar=False
    )
    ax.set_title("Confusion matrix (test set)")
    return figure


def roc_curve(holdout: Holdout) -> Figure:
    """The test-set ROC curve; one curve per class (one-vs-rest) when multiclass."""
    figure = Figure(figsize=(5, 4.5), layout="constrained")
    ax = figure.add_subplot()
    y_true, proba, classes = holdout.y_true, holdout.proba, holdout.classes
    if len(classes) == 2:
        RocCurveDisplay.from_predictions(
            y_true, proba[:, 1], pos_label=classes[1], name=f"class {classes[1]}", ax=ax
        )
    else:
        for index, label in enumerate(classes):
            RocCurveDisplay.from_predictions(
                y_true == label, proba[:, index], name=f"class {label} vs rest", ax=ax
            )
    ax.set_title("ROC curve (test set)")
    return figure

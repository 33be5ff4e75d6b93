"""Figures logged with each run, on the test set: the confusion matrix and ROC curve(s) of a
classifier, or the predicted-versus-actual and residual plots of a regressor."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on servers and in CI

from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay, PredictionErrorDisplay, RocCurveDisplay

from .evaluate import Holdout


def for_holdout(holdout: Holdout) -> dict[str, Figure]:
    """The figures that suit the model, by artifact path."""
    if holdout.classes is None:
        return {
            "plots/predicted_vs_actual.png": prediction_error(holdout, "actual_vs_predicted"),
            "plots/residuals.png": prediction_error(holdout, "residual_vs_predicted"),
        }
    return {
        "plots/confusion_matrix.png": confusion_matrix(holdout),
        "plots/roc_curve.png": roc_curve(holdout),
    }


def prediction_error(holdout: Holdout, kind: str) -> Figure:
    """A regressor's test-set predictions against the truth (`actual_vs_predicted`) or their
    residuals (`residual_vs_predicted`)."""
    figure = Figure(figsize=(5, 4.5), layout="constrained")
    ax = figure.add_subplot()
    PredictionErrorDisplay.from_predictions(
        holdout.y_true, holdout.predicted, kind=kind, ax=ax, subsample=None
    )
    actual = kind == "actual_vs_predicted"
    ax.set_title("Actual vs predicted (test set)" if actual else "Residuals (test set)")
    return figure


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
    if proba is None or classes is None:
        raise ValueError("a ROC curve needs a classifier's probabilities")
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

"""Figures logged with each run: the confusion matrix and the ROC curve(s) on the test set."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on servers and in CI

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay
from sklearn.pipeline import Pipeline


def confusion_matrix(model: Pipeline, x_test: pd.DataFrame, y_test: pd.Series) -> Figure:
    """The test-set confusion matrix, counts per (true, predicted) class."""
    figure = Figure(figsize=(5, 4.5), layout="constrained")
    ax = figure.add_subplot()
    ConfusionMatrixDisplay.from_predictions(
        y_test, model.predict(x_test), labels=model.classes_, ax=ax, colorbar=False
    )
    ax.set_title("Confusion matrix (test set)")
    return figure


def roc_curve(model: Pipeline, x_test: pd.DataFrame, y_test: pd.Series) -> Figure:
    """The test-set ROC curve; one curve per class (one-vs-rest) when multiclass."""
    figure = Figure(figsize=(5, 4.5), layout="constrained")
    ax = figure.add_subplot()
    classes = model.classes_
    proba = np.asarray(model.predict_proba(x_test))
    if len(classes) == 2:
        RocCurveDisplay.from_predictions(
            y_test, proba[:, 1], pos_label=classes[1], name=f"class {classes[1]}", ax=ax
        )
    else:
        for index, label in enumerate(classes):
            RocCurveDisplay.from_predictions(
                y_test == label, proba[:, index], name=f"class {label} vs rest", ax=ax
            )
    ax.set_title("ROC curve (test set)")
    return figure

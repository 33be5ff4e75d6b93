"""A PNG of series read from Prometheus, one panel per figure, for a person to look at."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # after the backend is chosen

# A panel's series: a legend label and its (Unix seconds, value) points.
Series = dict[str, list[tuple[float, float]]]


def series(result: list[dict[str, Any]], label: str) -> Series:
    """A query_range result as Series, each labelled by `label` formatted with its labels."""
    return {
        label.format(**item["metric"]): [(float(t), float(v)) for t, v in item["values"]]
        for item in result
    }


def draw(panels: dict[str, Series], path: Path) -> Path:
    """Each panel as a line plot, seconds from the first point on x, two panels a row."""
    rows = (len(panels) + 1) // 2
    figure, axes = plt.subplots(rows, 2, figsize=(12, 3.2 * rows), squeeze=False)
    start = min((t for panel in panels.values() for s in panel.values() for t, _ in s), default=0)
    for ax, (title, panel) in zip(axes.flat, panels.items(), strict=False):
        for label, points in sorted(panel.items()):
            ax.plot([t - start for t, _ in points], [v for _, v in points], label=label)
        ax.set_title(title)
        ax.set_xlabel("seconds")
        ax.grid(alpha=0.3)
        if panel:
            ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path

"""Input drift on /metrics: each feature's population stability index (PSI) between the rows
served lately and the training split's bins (reference_bins.py, in the model's metadata).

The request path only appends its rows to a bounded queue; binning and scoring happen when
/metrics is scraped, on at most PENDING rows since the last scrape (a sample under heavy load).
The window is the last WINDOW binned rows, kept as SLOTS counts that age out one at a time.
PSI: 0.1 is a moderate shift, above 0.25 a large one (k8s/monitoring alerts there).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..reference_bins import bin_indices

if TYPE_CHECKING:
    from .requests import Rows

WINDOW = 10_000  # rows
SLOTS = 10
PENDING = 2_000  # rows queued between scrapes at most
MIN_ROWS = 200  # fewer rows in the window: no score (too noisy to mean anything)
FLOOR = 1e-4  # an empty bin's share, so the log stays finite


def psi(served: np.ndarray, reference: np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins."""
    p, q = np.maximum(served, FLOOR), np.maximum(reference, FLOOR)
    return float(np.sum((p - q) * np.log(p / q)))


class DriftWindow:
    """The referenced features' bin counts over the last WINDOW served rows."""

    def __init__(self, names: Sequence[str], reference: dict[str, dict[str, list[float]]]):
        known = [name for name in names if name in reference]
        self.features = known
        self.columns = [list(names).index(name) for name in known]
        self.edges = [np.asarray(reference[name]["edges"]) for name in known]
        self.shares = [np.asarray(reference[name]["shares"]) for name in known]
        # Whole batches as the request path hands them on (an array is not split into rows:
        # one append per request), holding the last PENDING rows at most.
        self.pending: deque[Rows] = deque()
        self.queued = 0  # rows in `pending`
        self.slots: deque[tuple[int, list[np.ndarray]]] = deque(maxlen=SLOTS)

    def observe(self, rows: Rows) -> None:
        """The request path: queue the rows (values in signature order), nothing more."""
        self.pending.append(rows)
        self.queued += len(rows)
        while self.queued > PENDING:  # the oldest queued rows give way
            excess, oldest = self.queued - PENDING, self.pending[0]
            if len(oldest) <= excess:
                self.pending.popleft()
                self.queued -= len(oldest)
            else:
                self.pending[0] = oldest[excess:]
                self.queued -= excess

    def _values(self, rows: Rows) -> np.ndarray:
        """The referenced features' columns of a queued batch, as floats (a null is NaN)."""
        if isinstance(rows, np.ndarray):
            return rows[:, self.columns]
        return np.asarray([[row[i] for i in self.columns] for row in rows], np.float64)

    def _count(self) -> None:
        batches = list(self.pending)
        self.pending.clear()
        self.queued = 0
        if not batches:
            return
        values = np.concatenate([self._values(rows) for rows in batches])
        size, start = WINDOW // SLOTS, 0
        while start < len(values):
            if not self.slots or self.slots[-1][0] >= size:
                self.slots.append((0, [np.zeros(len(e) + 2, np.int64) for e in self.edges]))
            filled, counts = self.slots[-1]
            chunk = values[start : start + size - filled]
            for j, edges in enumerate(self.edges):
                counts[j] += np.bincount(bin_indices(chunk[:, j], edges), minlength=len(edges) + 2)
            self.slots[-1] = (filled + len(chunk), counts)
            start += len(chunk)

    def scores(self) -> dict[str, float]:
        """Each feature's PSI over the window; empty until it holds MIN_ROWS rows."""
        self._count()
        rows = sum(filled for filled, _ in self.slots)
        if rows < MIN_ROWS:
            return {}
        return {
            name: psi(
                np.sum([counts[j] for _, counts in self.slots], axis=0) / rows, self.shares[j]
            )
            for j, name in enumerate(self.features)
        }


class DriftCollector(Collector):
    """`feature_drift_psi{feature}` of the model being served, computed at scrape time."""

    def __init__(self) -> None:
        self.window: DriftWindow | None = None

    def track(self, names: Sequence[str], reference: dict[str, Any] | None) -> None:
        """Score the model just loaded (no reference recorded: no scores)."""
        self.window = DriftWindow(names, reference) if reference else None

    def observe(self, rows: Rows) -> None:
        if self.window is not None:
            self.window.observe(rows)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "feature_drift_psi",
            "Population stability index of each feature: the last rows served vs training.",
            labels=["feature"],
        )
        for name, score in (self.window.scores() if self.window else {}).items():
            gauge.add_metric([name], score)
        yield gauge

"""Each numeric feature's distribution in the training split, as decile bins: the reference the
server's drift scores (serve/drift.py) compare served values with. Numpy only, so the serving
image can bin values exactly as training did."""

from __future__ import annotations

from typing import Any

import numpy as np

# The exported model's MLmodel metadata key: {feature: {"edges": [...], "shares": [...]}}.
DRIFT_REFERENCE = "drift_reference"
BINS = 10  # deciles; a feature with many ties gets fewer (its repeated edges merge)


def bin_indices(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Each value's bin: 0..len(edges) between the edges, len(edges) + 1 for a missing one."""
    return np.where(np.isnan(values), len(edges) + 1, np.searchsorted(edges, values, side="right"))


def bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The share of `values` in each bin (the last: missing)."""
    counts = np.bincount(bin_indices(values, edges), minlength=len(edges) + 2)
    return counts / max(len(values), 1)


def reference(frame: Any) -> dict[str, dict[str, list[float]]]:
    """Decile edges and the training split's share in each bin, per numeric column of `frame`."""
    found = {}
    for name in frame.columns:
        if frame[name].dtype.kind not in "biuf":  # categories drift too, but are not binned here
            continue
        values = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
        present = values[~np.isnan(values)]
        if present.size == 0:
            continue
        edges = np.unique(np.quantile(present, np.linspace(0, 1, BINS + 1)[1:-1]))
        found[str(name)] = {
            "edges": edges.tolist(),
            "shares": bin_shares(values, edges).tolist(),
        }
    return found

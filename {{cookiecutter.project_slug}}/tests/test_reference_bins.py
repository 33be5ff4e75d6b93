"""Training's reference bins: decile edges and shares per numeric feature, in the exported model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from {{ cookiecutter.package_name }}.reference_bins import (
    DRIFT_REFERENCE,
    bin_indices,
    reference,
)


def test_deciles_of_each_numeric_column_and_a_bin_for_missing_values() -> None:
    frame = pd.DataFrame(
        {"x": np.arange(100.0), "flag": [0, 1] * 50, "name": ["a"] * 100, "empty": np.nan}
    )
    frame.loc[:9, "x"] = np.nan
    found = reference(frame)
    assert set(found) == {"x", "flag"}  # text is not binned; an all-missing column neither
    assert len(found["x"]["edges"]) == 9
    assert found["x"]["shares"][-1] == pytest.approx(0.1)  # the missing tenth
    assert sum(found["x"]["shares"]) == pytest.approx(1)
    assert found["flag"]["edges"] == [0.0, 0.5, 1.0]  # ties merge the repeated edges


def test_bins_split_at_the_edges_and_missing_goes_last() -> None:
    edges = np.array([1.0, 2.0])
    values = np.array([0.5, 1.0, 1.5, 2.0, 9.0, np.nan])
    assert bin_indices(values, edges).tolist() == [0, 1, 1, 2, 2, 3]


def test_the_exported_model_records_every_features_bins(exported_model: Path) -> None:
    mlmodel = yaml.safe_load((exported_model / "MLmodel").read_text())
    recorded = mlmodel["metadata"][DRIFT_REFERENCE]
    features = [column["name"] for column in yaml.safe_load(mlmodel["signature"]["inputs"])]
    assert set(recorded) == set(features)
    for bins in recorded.values():
        assert len(bins["shares"]) == len(bins["edges"]) + 2
        assert sum(bins["shares"]) == pytest.approx(1)

"""benchmarks/drift_cost.py's pure parts: the model copy that tracks no drift, the alternating
order of the two servers, and the with/without table. The servers run in
`python benchmarks/drift_cost.py --project BAKE` (CONTRIBUTING's Benchmarks rule)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import TEMPLATE

sys.path.insert(0, str(TEMPLATE / "benchmarks"))  # the scripts import each other by file name

import drift_cost
import wrk
from wrk import Result, Setting

MLMODEL = """artifact_path: model
flavors:
  python_function:
    loader_module: mlflow.sklearn
metadata:
  drift_reference:
    mean radius:
      edges: [1.0, 2.0]
      shares: [0.2, 0.5, 0.3, 0.0]
  nullable_features: []
signature:
  inputs: '[{"type": "double", "name": "mean radius", "required": true}]'
"""


def test_the_untracked_copy_loses_only_the_drift_reference() -> None:
    before, after = (
        yaml.safe_load(MLMODEL),
        yaml.safe_load(drift_cost.without_drift_reference(MLMODEL)),
    )
    del before["metadata"]["drift_reference"]
    assert after == before


def test_a_model_without_a_drift_reference_has_nothing_to_compare() -> None:
    with pytest.raises(ValueError, match="no drift_reference"):
        drift_cost.without_drift_reference("metadata:\n  nullable_features: []\n")


def test_the_servers_take_turns_going_first() -> None:
    on, off = drift_cost.ON, drift_cost.OFF
    assert drift_cost.orders(3) == [(on, off), (off, on), (on, off)]


def test_the_table_gives_the_median_of_paired_rounds() -> None:
    def runs_of(*rps: float) -> list[drift_cost.Run]:
        return [
            drift_cost.Run(Result(value, 6.0 + i / 10, 9.0, 0), 1e6 / value)
            for i, value in enumerate(rps)
        ]

    runs = {
        Setting(100, 8): {
            drift_cost.ON: runs_of(950.0, 1010.0, 500.0),  # a burst of load in round 3
            drift_cost.OFF: runs_of(1000.0, 1010.0, 520.0),
        }
    }
    assert drift_cost.summary(runs)[-1] == (
        "| rows=100 c=8 | 820 | 843 | 0.962 | 0.950-1.000 | 1348 | 1304 | 1.040 | 1.000-1.053 "
        "| 6.10 ms | 6.10 ms |"
    )


def test_cpu_per_request_is_the_servers_cpu_time_over_the_requests_served() -> None:
    result = Result(2000.0, 1.0, 2.0, 0)
    assert drift_cost.cpu_per_request(10.0, 14.0, result, seconds=5) == pytest.approx(400.0)
    assert drift_cost.cpu_per_request(None, 14.0, result, seconds=5) is None


def test_cpu_time_is_read_from_proc_stat() -> None:
    stat = "4242 (ml (serve) x) S 1 2 3 4 5 6 7 8 9 10 250 40 0 0 20 0 9"
    assert wrk.cpu_ticks(stat) == 290
    if Path("/proc/self/stat").is_file():  # Linux: this process has used some CPU
        assert (wrk.process_cpu_seconds(os.getpid()) or 0) > 0

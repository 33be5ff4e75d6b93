"""Input drift on /metrics: PSI per feature stays low for traffic like training's and rises past
the alert's threshold (0.25, k8s/monitoring/rules.yaml) for a shifted feature only."""

from __future__ import annotations

import http.client
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.package_name }}.config import (
    ServeSettings,
    Task,
)
from {{ cookiecutter.package_name }}.data import (
    load_dataset,
)
from {{ cookiecutter.package_name }}.reference_bins import (
    reference,
)
from {{ cookiecutter.package_name }}.serve.drift import (
    MIN_ROWS,
    PENDING,
    SLOTS,
    WINDOW,
    DriftWindow,
    psi,
)
from {{ cookiecutter.package_name }}.serve.model import (
    ServedModel,
)

from .servers import ThreadServer, server_in_thread

ALERT = 0.25  # FeatureDrift's threshold
CALM = 0.1  # below this, no shift worth a look
SHIFTED = "mean radius"


def window_for(training: pd.DataFrame) -> DriftWindow:
    return DriftWindow(list(training.columns), reference(training))


def test_psi_is_zero_for_the_same_shares_and_grows_with_the_shift() -> None:
    same = np.array([0.25, 0.25, 0.5])
    assert psi(same, same) == 0
    assert 0 < psi(np.array([0.3, 0.2, 0.5]), same) < psi(np.array([0.6, 0.1, 0.3]), same)


def test_a_window_scores_the_shifted_column_only() -> None:
    rng = np.random.default_rng(0)
    training = pd.DataFrame(rng.normal(size=(5000, 3)), columns=["a", "b", "c"])
    window = window_for(training)
    calm = rng.normal(size=(WINDOW, 3))
    for start in range(0, WINDOW, PENDING):
        window.observe(calm[start : start + PENDING].tolist())
        scores = window.scores()
    assert max(scores.values()) < CALM, scores
    shifted = calm + np.array([0, 1.5, 0])
    for start in range(0, WINDOW, PENDING):
        window.observe(shifted[start : start + PENDING].tolist())
        scores = window.scores()
    assert scores["b"] > ALERT, scores
    assert max(scores["a"], scores["c"]) < CALM, scores


def test_the_window_and_the_queue_stay_bounded() -> None:
    window = window_for(pd.DataFrame({"a": np.arange(100.0)}))
    assert window.scores() == {}
    window.observe([[1.0]] * (MIN_ROWS - 1))
    assert window.scores() == {}  # too few rows to score
    window.observe([[1.0]] * (PENDING * 3))
    assert sum(map(len, window.pending)) == window.queued == PENDING  # the oldest give way
    window.observe(np.ones((PENDING // 2, 1)))  # an array batch, as the batch path hands on
    assert sum(map(len, window.pending)) == window.queued == PENDING
    for _ in range(2 * WINDOW // PENDING):
        window.observe([[1.0]] * PENDING)
        window.scores()
    # Whole slots age out: between one slot short of WINDOW and WINDOW rows are kept.
    assert WINDOW - WINDOW // SLOTS < sum(filled for filled, _ in window.slots) <= WINDOW


def post(server: ThreadServer, rows: list[dict[Any, Any]]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    body = json.dumps({"instances": rows})
    connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 200, response.read()
    response.read()
    connection.close()


def scores(server: ThreadServer) -> dict[str, float]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    found = re.findall(r'^feature_drift_psi\{feature="([^"]+)"\} (\S+)$', text, re.MULTILINE)
    return {name: float(value) for name, value in found}


def serve_rows(server: ThreadServer, frame: pd.DataFrame, rows: int) -> dict[str, float]:
    """POST `rows` rows of `frame` (cycled) in batches of 100, scraping as the queue fills."""
    records = frame.to_dict("records")
    sent = 0
    while sent < rows:
        for start in range(0, len(records), 100):
            post(server, records[start : start + 100])
            sent += len(records[start : start + 100])
            if sent % PENDING < 100:
                scores(server)
    return scores(server)


def test_scores_on_metrics_rise_past_the_alert_for_the_shifted_feature_only(
    exported_model: Path, served_model: ServedModel, capsys: pytest.CaptureFixture[str]
) -> None:
    data = load_dataset(None, "target", Task.CLASSIFICATION).features
    with server_in_thread(ServeSettings(model_uri=str(exported_model)), served_model) as server:
        assert scores(server) == {}  # nothing served yet
        calm = serve_rows(server, data, 2 * len(data))
        shifted = serve_rows(server, data.assign(**{SHIFTED: data[SHIFTED] * 1.5}), WINDOW)
    assert set(calm) == set(shifted) == set(data.columns)
    assert max(calm.values()) < CALM, calm
    assert shifted[SHIFTED] > ALERT, shifted
    others = {name: score for name, score in shifted.items() if name != SHIFTED}
    assert max(others.values()) < CALM, others
    with capsys.disabled():
        print(
            f"\ncalm PSI max {max(calm.values()):.3f}; shifted: {SHIFTED} {shifted[SHIFTED]:.3f},"
            f" the other features' max {max(others.values()):.3f}"
        )

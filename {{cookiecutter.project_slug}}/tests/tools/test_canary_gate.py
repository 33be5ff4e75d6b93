"""tools/canary_gate.py: each reason the gate rolls a canary back, and /metrics as it reads it."""

from __future__ import annotations

from typing import Any

from tools import canary_gate


def counts(**values: Any) -> canary_gate.Counts:
    return canary_gate.Counts(**values)


def test_the_gate_judges_errors_latency_drift_and_traffic() -> None:
    fast = ((0.005, 99.0), (0.01, 100.0), (float("inf"), 100.0))
    slow = ((0.005, 10.0), (0.25, 100.0), (float("inf"), 100.0))
    stable = counts(requests=100, rows=1000, buckets=fast, drift=0.02)
    assert canary_gate.judge(stable, counts(requests=100, rows=1000, buckets=fast, drift=0.05))[0]
    verdicts = {
        "5xx": counts(requests=100, errors=5, rows=950, buckets=fast),
        "p99": counts(requests=100, rows=1000, buckets=slow),
        "PSI 0.40": counts(requests=100, rows=1000, buckets=fast, drift=0.4),
        "fewer than 50": counts(requests=10, rows=100, buckets=fast),
    }
    for reason, candidate in verdicts.items():
        promote, why = canary_gate.judge(stable, candidate)
        assert not promote, why
        assert reason in why, why


def test_metrics_are_read_per_prediction_endpoint() -> None:
    text = "\n".join(
        [
            "# HELP http_requests_total HTTP requests answered.",
            'http_requests_total{endpoint="/predict",method="POST",status="200"} 8.0',
            'http_requests_total{endpoint="/v2/models/{name}/infer",status="500"} 2.0',
            'http_requests_total{endpoint="/readyz",method="GET",status="200"} 50.0',
            'http_request_duration_seconds_bucket{endpoint="/predict",le="0.005"} 7.0',
            'http_request_duration_seconds_bucket{endpoint="/predict",le="+Inf"} 8.0',
            'predictions_total{endpoint="/predict"} 80.0',
            'non_finite_predictions_total{endpoint="/predict"} 3.0',
            'feature_drift_psi{feature="a"} 0.1',
            'feature_drift_psi{feature="b"} 0.3',
        ]
    )
    read = canary_gate.read_metrics(text)
    assert (read.requests, read.errors, read.rows, read.non_finite, read.drift) == (
        10,
        2,
        80,
        3,
        0.3,
    )
    assert read.p99() == float("inf")
    assert (read + read).since(read) == read

"""The canary's gate: what canary pods answered during a watch against what the stable pods
answered over the same time, read from each pod's /metrics (tools/canary.py rolls it out).
Standard library only, as tools/cluster.py.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from tools.kube import ClusterError, http

# The gate, judged over the watch. The canary fails it when, compared with the stable pods:
ERROR_MARGIN = 0.01  # its share of 5xx answers is more than 1 point higher,
NON_FINITE_MARGIN = 0.001  # its share of rows refused as NaN/infinite is 0.1 point higher,
LATENCY_FACTOR, LATENCY_FLOOR = 2.0, 0.05  # its p99 is over 2x and over 50 ms,
DRIFT_MARGIN = 0.1  # or its input drift (max PSI) is 0.1 higher: trained on other data.
MIN_REQUESTS = 50  # fewer predictions than this on the canary: too little to judge
PREDICTION_ENDPOINT = re.compile(r"/predict|/invocations|/v2/models/.*/infer")
SAMPLE = re.compile(r"^(?P<name>[a-z_:]+)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Counts:
    """What pods answered, summed over them (cumulative counters, or their increase)."""

    requests: float = 0
    errors: float = 0  # 5xx
    rows: float = 0  # rows predicted
    non_finite: float = 0  # rows refused because the model computed NaN or infinity
    buckets: tuple[tuple[float, float], ...] = ()  # (le, cumulative count) of the latency
    drift: float | None = None  # the highest feature_drift_psi, None before enough rows

    def __add__(self, other: Counts) -> Counts:
        drifts = [d for d in (self.drift, other.drift) if d is not None]
        return Counts(
            self.requests + other.requests,
            self.errors + other.errors,
            self.rows + other.rows,
            self.non_finite + other.non_finite,
            merge(self.buckets, other.buckets, 1),
            max(drifts) if drifts else None,
        )

    def since(self, before: Counts) -> Counts:
        """The increase from `before` (drift is a gauge: its latest value)."""
        return Counts(
            self.requests - before.requests,
            self.errors - before.errors,
            self.rows - before.rows,
            self.non_finite - before.non_finite,
            merge(self.buckets, before.buckets, -1),
            self.drift,
        )

    def p99(self) -> float | None:
        """The 99th percentile latency, as the upper bound of its histogram bucket."""
        if not self.buckets or self.buckets[-1][1] <= 0:
            return None
        rank = 0.99 * self.buckets[-1][1]
        return next(le for le, count in self.buckets if count >= rank)


def merge(
    a: tuple[tuple[float, float], ...], b: tuple[tuple[float, float], ...], sign: int
) -> tuple[tuple[float, float], ...]:
    totals = dict(a)
    for le, count in b:
        totals[le] = totals.get(le, 0) + sign * count
    return tuple(sorted(totals.items()))


def read_metrics(text: str) -> Counts:
    """The gate's inputs from one pod's /metrics (Prometheus text format)."""
    requests = errors = rows = non_finite = 0.0
    buckets: dict[float, float] = {}
    drifts = []
    for line in text.splitlines():
        if not (sample := SAMPLE.match(line)):
            continue
        name, value = sample["name"], float(sample["value"])
        labels = dict(LABEL.findall(sample["labels"] or ""))
        predicting = bool(PREDICTION_ENDPOINT.fullmatch(labels.get("endpoint", "")))
        if name == "http_requests_total" and predicting:
            requests += value
            errors += value if labels.get("status", "").startswith("5") else 0
        elif name == "http_request_duration_seconds_bucket" and predicting:
            le = math.inf if labels["le"] == "+Inf" else float(labels["le"])
            buckets[le] = buckets.get(le, 0) + value
        elif name == "predictions_total" and predicting:
            rows += value
        elif name == "non_finite_predictions_total":
            non_finite += value
        elif name == "feature_drift_psi":
            drifts.append(value)
    latency = tuple(sorted(buckets.items()))
    return Counts(requests, errors, rows, non_finite, latency, max(drifts) if drifts else None)


def share(part: float, whole: float) -> float:
    return part / whole if whole > 0 else 0.0


def judge(stable: Counts, canary: Counts, min_requests: int = MIN_REQUESTS) -> tuple[bool, str]:
    """(promote?, why) from what each side answered over the same watch."""
    if canary.requests < min_requests:
        why = f"{canary.requests:.0f} predictions reached the canary, fewer than {min_requests}"
        return False, f"{why}: too little traffic to judge"
    errors = share(canary.errors, canary.requests), share(stable.errors, stable.requests)
    refused = (
        share(canary.non_finite, canary.non_finite + canary.rows),
        share(stable.non_finite, stable.non_finite + stable.rows),
    )
    p99 = canary.p99(), stable.p99()
    problems = []
    if errors[0] > errors[1] + ERROR_MARGIN:
        problems.append("{} of its answers are 5xx (stable {})".format(*map(percent, errors)))
    if refused[0] > refused[1] + NON_FINITE_MARGIN:
        shares = map(percent, refused)
        problems.append("{} of its rows are non-finite predictions (stable {})".format(*shares))
    if p99[0] is not None and p99[0] > max(LATENCY_FACTOR * (p99[1] or 0), LATENCY_FLOOR):
        problems.append(f"its p99 is {seconds(p99[0])} (stable {seconds(p99[1])})")
    drifts = canary.drift, stable.drift
    if drifts[0] is not None and drifts[1] is not None and drifts[0] > drifts[1] + DRIFT_MARGIN:
        problems.append(f"its input drift is PSI {drifts[0]:.2f} (stable {drifts[1]:.2f})")
    drift = "n/a (too few rows)" if canary.drift is None else f"{canary.drift:.3f}"
    summary = (
        f"canary {canary.requests:.0f} predictions, {percent(errors[0])} 5xx, "
        f"{canary.non_finite:.0f} rows non-finite, p99 {seconds(p99[0])}, drift {drift}"
    )
    if problems:
        return False, "; ".join([*problems, summary])
    return True, f"{summary}; stable {stable.requests:.0f} predictions, p99 {seconds(p99[1])}"


def percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:.1f} ms"


def scrape(urls: Sequence[str]) -> Counts:
    """Every pod's /metrics, summed."""
    total = Counts()
    for url in urls:
        status, body = http(f"{url.rstrip('/')}/metrics")
        if status != 200:
            raise ClusterError(f"{url}/metrics answered {status}: {body[:200]}")
        total += read_metrics(body)
    return total


def gate(
    stable: Sequence[str], canary: Sequence[str], watch: float, min_requests: int
) -> tuple[bool, str]:
    """Read both sides' /metrics, wait `watch` seconds while traffic flows, judge the increase."""
    before = scrape(stable), scrape(canary)
    time.sleep(watch)
    after = scrape(stable), scrape(canary)
    return judge(after[0].since(before[0]), after[1].since(before[1]), min_requests)


def decision_line(promote: bool, why: str) -> str:
    return f"{'promote' if promote else 'roll back'}: {why}"

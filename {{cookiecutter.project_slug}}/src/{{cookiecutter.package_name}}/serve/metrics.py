"""Prometheus metrics: requests by endpoint and status, latency, predictions served, the process."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter as Tally
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .drift import DriftCollector

log = logging.getLogger(__name__)

# The status counted for a request that ended without the app answering it: the client went
# away, or the drain after SIGTERM cut it (nginx's "client closed request"). Not a server error.
CLIENT_GONE = 499

# Label values never come from the client as sent: every new value is a series kept until the
# process ends, so made-up methods or paths would grow /metrics until the pod is OOM-killed.
# Methods outside RFC 9110's (and PATCH) count as OTHER, and so do paths outside the app's.
METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
OTHER = "other"

# Sub-millisecond buckets: a one-row prediction takes well under 1 ms plus HTTP.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """The server's metrics, in their own registry so each app (and test) starts at zero."""

    def __init__(self, endpoints: set[str]) -> None:
        self.endpoints = endpoints
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests",
            "HTTP requests answered, by endpoint, method and status code.",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time from request to the end of the response, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "predictions",
            "Rows predicted, by endpoint.",
            ["endpoint"],
            registry=self.registry,
        )
        # The prediction mix (k8s/monitoring alerts on its shift): classes are the model's own,
        # so the label stays bounded. Regressors predict numbers and leave it empty.
        self.classes = Counter(
            "predicted_class",
            "Rows predicted, by the class predicted (classifiers).",
            ["class"],
            registry=self.registry,
        )
        self.non_finite = Counter(
            "non_finite_predictions",
            "Rows refused because the model computed NaN or an infinity for them, by endpoint.",
            ["endpoint"],
            registry=self.registry,
        )
        self.model_info = Gauge(
            "model_info",
            "The model being served (value 1).",
            ["name", "version", "run_id"],
            registry=self.registry,
        )
        self.ready = Gauge(
            "model_ready",
            "1 once the model is loaded and the server takes predictions.",
            registry=self.registry,
        )
        # CPU seconds and resident memory, read from /proc at scrape time only: saturation.
        ProcessCollector(registry=self.registry)
        self.drift = DriftCollector()  # feature_drift_psi{feature}
        self.registry.register(self.drift)

        # Labelled children by their labels: `labels()` takes a lock and builds a key each time.
        self._answered: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._predicted: dict[str, Any] = {}
        self._classes: dict[Any, Any] = {}

    def endpoint(self, path: str) -> str:
        """The label for `path`: a known endpoint, or OTHER so labels stay few."""
        return path if path in self.endpoints else OTHER

    def answered(self, path: str, method: str, status: int, seconds: float) -> None:
        """Count one response to `method path` with `status`, taking `seconds`."""
        key = (self.endpoint(path), method if method in METHODS else OTHER, status)
        if (children := self._answered.get(key)) is None:  # a bounded set: cache every one
            children = self._answered[key] = (
                self.requests.labels(key[0], key[1], str(status)),
                self.latency.labels(key[0]),
            )
        children[0].inc()
        children[1].observe(seconds)

    def predicted(self, endpoint: str, rows: int) -> None:
        """Count `rows` predicted rows on `endpoint`."""
        if (child := self._predicted.get(endpoint)) is None:
            child = self._predicted[endpoint] = self.predictions.labels(endpoint)
        child.inc(rows)

    def predicted_classes(self, predictions: list[Any]) -> None:
        """Count a classifier's predicted rows by class."""
        # One row, the common request, skips building a Counter (a few microseconds).
        tally = Tally(predictions) if len(predictions) > 1 else dict.fromkeys(predictions, 1)
        for label, rows in tally.items():
            if (child := self._classes.get(label)) is None:
                child = self._classes[label] = self.classes.labels(str(label))
            child.inc(rows)

    def render(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """ASGI middleware counting every HTTP response and timing it."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before responding
        responded = False

        async def recording_send(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        except asyncio.CancelledError:
            # serve/server.py cancels what still runs when DRAIN_SECONDS run out. Answer if we
            # still can, count it as cut, and end here: re-raising only adds a traceback.
            log.warning("%s %s cut by the drain timeout", scope["method"], scope["path"])
            if not responded:
                await _send_shutting_down(send)
            status = CLIENT_GONE
        finally:
            # The matched route's template (/v2/models/{name}/infer), never the path as sent.
            path = str(getattr(scope.get("route"), "path", scope["path"]))
            self.metrics.answered(path, scope["method"], status, time.perf_counter() - started)


async def _send_shutting_down(send: Send) -> None:
    body = json.dumps(
        {"error": "server shutting down", "detail": "the drain timeout cut this request"}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})

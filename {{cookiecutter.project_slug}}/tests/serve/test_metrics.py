"""/metrics stays the same size whatever clients send: no label value is the client's choice."""

from __future__ import annotations

import http.client
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.config import (
    ServeSettings,
)
from {{ cookiecutter.package_name }}.serve.app import (
    ENDPOINTS,
)
from {{ cookiecutter.package_name }}.serve.metrics import (
    METHODS,
)
from {{ cookiecutter.package_name }}.serve.model import (
    ServedModel,
)

from .servers import ThreadServer, server_in_thread
from .test_app import metric

ROUNDS = 2
PER_ROUND = 1500  # per member: thousands of distinct values in all

# Each member: the method and path of request i, all different from each other.
HOSTILE: dict[str, Callable[[int], tuple[str, str]]] = {
    "made-up-methods": lambda i: (f"M{i:05d}", "/healthz"),
    "lowercase-and-long-methods": lambda i: (f"get{'x' * (i % 200)}{i}", "/predict"),
    "made-up-paths": lambda i: ("GET", f"/x{i}"),
    "known-path-with-suffixes": lambda i: ("POST", f"/predict/{i}"),
    "query-strings": lambda i: ("GET", f"/metadata?q={i}"),
    "encoded-paths": lambda i: ("GET", f"/%7E{i:x}/%2e%2e"),
    "both": lambda i: (f"X-{i}", f"/{i}"),
    "made-up-v2-model-names": lambda i: ("GET", f"/v2/models/m{i}/versions/{i}"),
}


@pytest.fixture
def server(exported_model: Path, served_model: ServedModel) -> Iterator[ThreadServer]:
    """A server of its own per test: each starts from empty metrics."""
    with server_in_thread(ServeSettings(model_uri=str(exported_model)), served_model) as running:
        yield running


def series(server: ThreadServer) -> tuple[set[str], str]:
    """The names and label sets on /metrics (values left out), and the whole text."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    samples = {line.rsplit(" ", 1)[0] for line in text.splitlines() if not line.startswith("#")}
    return samples, text


def send(server: ThreadServer, requests: Iterator[tuple[str, str]]) -> None:
    """Each request on one kept-alive connection, reading every answer."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    for method, path in requests:
        connection.request(method, path)
        response = connection.getresponse()
        response.read()
        assert response.status < 500, (method, path, response.status)
        if response.will_close:
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.close()


@pytest.mark.parametrize("member", list(HOSTILE))
def test_odd_methods_and_paths_add_no_series(server: ThreadServer, member: str) -> None:
    make = HOSTILE[member]
    series(server)  # the scrape's own series exist from here on
    rounds = []
    for round_ in range(ROUNDS):
        send(server, (make(round_ * PER_ROUND + i) for i in range(PER_ROUND)))
        rounds.append(series(server))
    (first, _), (samples, text) = rounds[0], rounds[-1]
    assert samples == first, f"new series: {sorted(samples - first)[:5]}"
    # Every sample names a known method and endpoint or `other`, never what the client sent.
    assert set(re.findall(r'method="([^"]*)"', text)) <= {*METHODS, "other"}
    assert set(re.findall(r'endpoint="([^"]*)"', text)) <= {*ENDPOINTS, "other"}
    counted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("http_requests_total{")
    )
    assert counted >= ROUNDS * PER_ROUND  # all counted, under a few labels


def test_known_methods_keep_their_label(server: ThreadServer) -> None:
    send(server, iter([("DELETE", "/predict"), ("PATCH", "/healthz"), ("get", "/healthz")]))
    _, text = series(server)
    assert metric(text, "http_requests_total", endpoint="/predict", method="DELETE", status="405")
    assert metric(text, "http_requests_total", endpoint="/healthz", method="PATCH", status="405")
    assert metric(text, "http_requests_total", endpoint="/healthz", method="other", status="405")

"""A real Prometheus (Debian's binary, on the host) scrapes a bake's serving container, started
as its pod by proof/containers.py, with the bake's rules loaded. After a little traffic, every
rule is healthy and returns data (an alert through the series it reads), every dashboard panel's
query returns data, and a PNG of the key figures is kept: `key-figures.png` in the folder
`--artifacts DIR` names, else under pytest's temporary folder (the path is printed either way)."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker as docker_sdk
import pytest

from proof import figures, prometheus
from proof.bake import image_ref
from proof.containers import Server, ready, serving_pod
from proof.prometheus import RECORDED, Prometheus
from tests.conftest import nox

pytestmark = pytest.mark.docker

JOB = "ml-service"  # the default bake's slug: the job its rules and dashboard select
TRAFFIC_SECONDS = 30


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("monitoring", numbered=True)


@pytest.fixture(scope="module")
def scraped(trained_project: Path, docker: str, folder: Path) -> Iterator[Prometheus]:
    """Prometheus scraping the serving container while traffic ran, its rules evaluated."""
    nox(trained_project, "build")
    engine = docker_sdk.from_env(timeout=120)
    image = image_ref(trained_project, JOB)
    name = f"ops-monitoring-{uuid.uuid4().hex[:8]}"
    rules = trained_project / "k8s" / "monitoring" / "rules.yaml"
    with ready(engine, image, serving_pod(trained_project), name=name) as server:
        target = server.url.removeprefix("http://")
        with prometheus.running(rules, JOB, target, folder / "prometheus") as server_prometheus:
            send_traffic(server, TRAFFIC_SECONDS)
            wait_for_records(server_prometheus, rules)
            yield server_prometheus
    engine.close()


def post(url: str, body: bytes) -> int:
    request = urllib.request.Request(  # noqa: S310 - a loopback URL of our container
        url, body, {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback
            answer.read()
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code


def send_traffic(server: Server, seconds: float) -> None:
    """Batches of the model's example and of it scaled by 1.5 (for the bundled data, the other
    class), then a body that is not JSON, over and over."""
    rows, _ = server.predict_example()
    scaled = [{k: v * 1.5 if isinstance(v, float) else v for k, v in row.items()} for row in rows]
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for body in (
            json.dumps({"instances": rows * 10}).encode(),
            json.dumps({"instances": scaled * 10}).encode(),
            b"{not json",
        ):
            status = post(f"{server.url}/predict", body)
            statuses[status] = statuses.get(status, 0) + 1
        time.sleep(0.02)
    assert set(statuses) == {200, 400}, statuses
    assert statuses[200] > 50, statuses


def wait_for_records(server: Prometheus, rules: Path) -> None:
    """Until every recording rule has a value (a few evaluations after the traffic)."""
    names = [name for name in prometheus.rule_expressions(rules) if re.fullmatch(RECORDED, name)]
    deadline = time.monotonic() + 60
    while missing := [name for name in names if not server.query(name)]:
        assert time.monotonic() < deadline, f"never recorded: {missing}"
        time.sleep(1)


def test_every_rule_is_loaded_and_healthy(scraped: Prometheus, trained_project: Path) -> None:
    rules = prometheus.rule_expressions(trained_project / "k8s" / "monitoring" / "rules.yaml")
    loaded = {rule["name"]: rule for rule in scraped.rules()}
    assert set(loaded) == set(rules)
    assert {name: rule["health"] for name, rule in loaded.items()} == dict.fromkeys(rules, "ok")


def test_every_rule_expression_returns_data(scraped: Prometheus, trained_project: Path) -> None:
    """A recording rule's expression itself; an alert's (quiet when healthy) through each
    recorded series it compares, and the alert expression still evaluates."""
    empty = []
    for name, expr in prometheus.rule_expressions(
        trained_project / "k8s" / "monitoring" / "rules.yaml"
    ).items():
        if re.fullmatch(RECORDED, name):
            empty += [name] if not scraped.query(expr) else []
            continue
        scraped.query(expr)  # raises on an error
        operands = re.findall(RECORDED, expr)
        assert operands, f"{name} reads no recorded series"
        empty += [f"{name}: {series}" for series in operands if not scraped.query(series)]
    assert empty == []


def test_every_dashboard_query_returns_data(scraped: Prometheus, trained_project: Path) -> None:
    panels = prometheus.panel_queries(
        trained_project / "k8s" / "monitoring" / "dashboard.json", {"job": JOB}
    )
    assert len(panels) >= 8
    empty = [
        f"{title}: {expr}"
        for title, exprs in panels.items()
        for expr in exprs
        if not scraped.query(expr)
    ]
    assert empty == []


# What the PNG shows, over 10 s windows: the rules' 5 m windows hardly fill in a short test.
SELECT = f'job="{JOB}"'
PREDICT = f'{SELECT},endpoint=~"/predict|/invocations"'
KEY_FIGURES = {
    "Requests per second": (
        f"sum by (status) (rate(http_requests_total{{{SELECT}}}[10s]))",
        "{status}",
    ),
    "Prediction latency (s)": (
        f"histogram_quantile(0.99, sum by (le) "
        f"(rate(http_request_duration_seconds_bucket{{{PREDICT}}}[10s])))",
        "p99",
    ),
    "Rows predicted per second, by class": (
        f"sum by (class) (rate(predicted_class_total{{{SELECT}}}[10s]))",
        "class {class}",
    ),
    "Ready replicas": (f"sum(model_ready{{{SELECT}}})", "ready"),
    "CPU (cores)": (f"rate(process_cpu_seconds_total{{{SELECT}}}[10s])", "{instance}"),
    "Resident memory (bytes)": (f"process_resident_memory_bytes{{{SELECT}}}", "{instance}"),
    # Half the traffic is scaled by 1.5: every feature drifts, the most-shifted five shown.
    "Input drift, top five features (PSI)": (
        f"topk(5, feature_drift_psi{{{SELECT}}})",
        "{feature}",
    ),
}


def test_key_figures_are_drawn_to_a_png(
    scraped: Prometheus, folder: Path, request: pytest.FixtureRequest
) -> None:
    end = time.time()
    panels = {
        title: figures.series(scraped.query_range(expr, end - TRAFFIC_SECONDS - 30, end, 1), label)
        for title, (expr, label) in KEY_FIGURES.items()
    }
    assert all(panels.values()), [title for title, series in panels.items() if not series]
    artifacts: Path = request.config.getoption("artifacts") or folder
    artifacts.mkdir(parents=True, exist_ok=True)
    path = figures.draw(panels, artifacts / "key-figures.png")
    print(f"key figures: {path}")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

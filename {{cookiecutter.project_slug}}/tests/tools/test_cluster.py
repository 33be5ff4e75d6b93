"""tools/cluster.py without a cluster: Job outcomes, a port-forward that cannot start, and
connection errors, each reported as one line (the deploy itself runs on kind in CI)."""

from __future__ import annotations

import subprocess
import sys
from types import ModuleType
from typing import Any

import pytest

import tools.cluster

from ..waiting import free_port


@pytest.fixture(scope="module")
def cluster() -> ModuleType:
    return tools.cluster


def condition(kind: str, status: str = "True", **extra: str) -> dict[str, str]:
    return {"type": kind, "status": status, **extra}


def test_job_outcome_is_terminal_only_on_complete_or_failed(cluster: ModuleType) -> None:
    running = {"status": {"active": 1}}
    criteria = {"status": {"conditions": [condition("SuccessCriteriaMet")]}}
    complete = {"status": {"conditions": [condition("SuccessCriteriaMet"), condition("Complete")]}}
    failed = {
        "status": {
            "conditions": [
                condition("FailureTarget"),
                condition("Failed", reason="BackoffLimitExceeded", message="reached limit"),
            ]
        }
    }
    not_yet = {"status": {"conditions": [condition("Failed", "False")]}}
    assert cluster.job_outcome(running) is None
    assert cluster.job_outcome(criteria) is None
    assert cluster.job_outcome(not_yet) is None
    assert cluster.job_outcome(complete) == "complete"
    assert cluster.job_outcome(failed) == "failed: BackoffLimitExceeded reached limit"


def test_a_forward_that_exits_reports_its_own_stderr(cluster: ModuleType) -> None:
    failing = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.exit('error: unable to listen on port')"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    with pytest.raises(cluster.ClusterError) as raised:
        cluster.wait_for_listener(failing, free_port(), "port-forward")
    assert str(raised.value) == "port-forward exited 1: error: unable to listen on port"


def test_a_listening_process_is_ready(cluster: ModuleType) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        cluster.wait_for_listener(server, port, "http.server")
        status, _ = cluster.http(f"http://127.0.0.1:{port}/")
        assert status == 200
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_refused_connection_is_one_line_naming_the_url(cluster: ModuleType) -> None:
    url = f"http://127.0.0.1:{free_port()}/readyz"
    with pytest.raises(cluster.ClusterError) as raised:
        cluster.http(url, timeout=2)
    message = str(raised.value)
    assert message.startswith(f"{url}: ")
    assert "refused" in message.lower()
    assert "\n" not in message


def test_cpu_utilization_waits_for_a_measurement(cluster: ModuleType) -> None:
    def hpa(*metrics: dict[str, Any]) -> dict[str, Any]:
        return {"status": {"currentReplicas": 3, "currentMetrics": list(metrics)}}

    unknown: dict[str, Any] = {"type": "Resource", "resource": {"name": "cpu", "current": {}}}
    measured: dict[str, Any] = {
        "type": "Resource",
        "resource": {"name": "cpu", "current": {"averageUtilization": 134}},
    }
    assert cluster.cpu_utilization({"status": {}}) is None
    assert cluster.cpu_utilization({"status": {"currentMetrics": None}}) is None
    assert cluster.cpu_utilization(hpa(unknown)) is None
    assert cluster.cpu_utilization(hpa(unknown, measured)) == 134
    assert cluster.replicas(hpa(measured)) == 3

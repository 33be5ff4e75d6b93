"""tools/cluster.py and tools/kube.py without a cluster: what deploy applies, Job outcomes, a
port-forward that cannot start, and connection errors, each reported as one line (the deploy
itself runs on kind in CI)."""

from __future__ import annotations

import subprocess
import sys
from types import ModuleType
from typing import Any

import pytest
import yaml

import tools.cluster
from tools import kube
from tools.project import ROOT, names

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


def test_a_forward_that_exits_reports_its_own_stderr() -> None:
    failing = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.exit('error: unable to listen on port')"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    with pytest.raises(kube.ClusterError) as raised:
        kube.wait_for_listener(failing, free_port(), "port-forward")
    assert str(raised.value) == "port-forward exited 1: error: unable to listen on port"


def test_a_listening_process_is_ready() -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        kube.wait_for_listener(server, port, "http.server")
        status, _ = kube.http(f"http://127.0.0.1:{port}/")
        assert status == 200
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_refused_connection_is_one_line_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/readyz"
    with pytest.raises(kube.ClusterError) as raised:
        kube.http(url, timeout=2)
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


def test_deploy_renders_the_overlay_with_the_given_refs_and_pull_secret(
    cluster: ModuleType, kind_overlay: list[dict[str, Any]]
) -> None:
    """What `deploy --pull-secret` applies, rendered by kubectl: every pod runs the refs given,
    by digest or tag, and every ServiceAccount pulls with the registry credentials."""
    serve, train = names().image, names().train_image
    refs = {serve: f"ghcr.io/team/{serve}@sha256:{'0' * 64}", train: f"{train}:sha-0123abc"}
    overlay = cluster.write_kustomization(refs, True, ROOT / "k8s" / "overlays" / "kind")
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, check=True
    )
    docs = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    pods = [d["spec"]["template"]["spec"] for d in docs if d["kind"] in {"Deployment", "Job"}]
    assert {c["image"] for pod in pods for c in pod["containers"]} == set(refs.values())
    accounts = [d for d in docs if d["kind"] == "ServiceAccount"]
    assert len(accounts) == len({pod["serviceAccountName"] for pod in pods})
    for account in accounts:
        assert account["imagePullSecrets"] == [{"name": cluster.PULL_SECRET}]


def test_an_image_needs_name_and_a_tag_or_digest(cluster: ModuleType) -> None:
    assert cluster.parse_images(["a=b:1", "c=d@sha256:e"]) == {"a": "b:1", "c": "d@sha256:e"}
    for pair in ("a", "=b:1", "a="):
        with pytest.raises(cluster.ClusterError, match="is not NAME=REF"):
            cluster.parse_images([pair])
    assert cluster.image_entry("a", "localhost:5000/b:1") == {
        "name": "a",
        "newName": "localhost:5000/b",
        "newTag": "1",
    }
    with pytest.raises(cluster.ClusterError, match="implicit :latest"):
        cluster.image_entry("a", "localhost:5000/b")

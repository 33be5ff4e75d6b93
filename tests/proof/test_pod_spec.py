"""The rehearsal's reading of manifests: what it reproduces, and what it refuses to skip."""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from proof.pod_spec import (
    Doc,
    Unsupported,
    expand,
    plan,
    quantity,
    render,
)
from tests.conftest import CUSTOM_ANSWERS, DEFAULT_SLUG, bake


@pytest.fixture(scope="module")
def kubectl() -> None:
    """The overlays render with `kubectl kustomize`: fail in CI without it, skip elsewhere."""
    if shutil.which("kubectl") is None:
        message = "kubectl is needed to render the overlays"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.mark.parametrize(
    ("answers", "slug"),
    [({}, DEFAULT_SLUG), (CUSTOM_ANSWERS, "fraud-scorer")],
    ids=["default", "custom"],
)
def test_the_kind_overlay_is_understood_whole(
    tmp_path: Path, kubectl: None, answers: dict[str, str], slug: str
) -> None:
    project = bake(tmp_path, **answers)
    the_plan = plan(render(project / "k8s" / "overlays" / "kind"))
    workloads = {w.title: w for w in the_plan.workloads}
    assert set(workloads) == {f"Deployment/{slug}", "Deployment/mlflow", f"Job/{slug}-train"}
    serving = workloads[f"Deployment/{slug}"]
    assert (serving.replicas, serving.max_replicas) == (
        int(answers.get("replicas", "2")),
        int(answers.get("max_replicas", "5")),
    )
    assert serving.container.user == "10001:10001"
    assert serving.container.read_only
    assert serving.container.no_new_privileges
    assert serving.container.cap_drop == ["ALL"]
    assert serving.container.memory == 768 * 2**20
    assert serving.container.environment["MODEL_URI"] == "/app/model"  # from the ConfigMap
    assert [m.kind for m in serving.container.mounts] == ["tmpfs"]
    assert set(serving.container.probes) == {"startup", "readiness", "liveness"}
    mlflow = workloads["Deployment/mlflow"].container
    assert mlflow.environment["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert {m.kind for m in mlflow.mounts} == {"volume", "tmpfs"}
    assert mlflow.fs_group == 10001
    services = {s.name: s for s in the_plan.services}
    assert services[slug].ports == {80: 8000}
    assert services["mlflow"].ports == {5000: 5000}
    assert services[slug].namespace == answers.get("k8s_namespace", slug)
    assert the_plan.claims == ["mlflow"]
    assert any(line.startswith("NetworkPolicy/") for line in the_plan.not_enforced)


def deployment(**pod: Any) -> Doc:
    """A minimal Deployment the rehearsal accepts; `pod` overrides pod-spec fields."""
    container = {"name": "app", "image": "app:1", "ports": [{"name": "http", "containerPort": 80}]}
    spec = {"enableServiceLinks": False, "containers": [container], **pod}
    labels = {"app": "x"}
    return {
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": spec},
        },
    }


def with_container(**fields: Any) -> Doc:
    doc = deployment()
    doc["spec"]["template"]["spec"]["containers"][0].update(fields)
    return doc


def test_a_minimal_deployment_runs_one_replica_with_kubernetes_defaults() -> None:
    [workload] = plan([deployment()]).workloads
    assert (workload.replicas, workload.max_replicas) == (1, 1)
    assert workload.container.grace_seconds == 30
    assert workload.container.memory is None


@pytest.mark.parametrize(
    ("docs", "message"),
    [
        ([{"kind": "Ingress", "metadata": {"name": "web"}}], "Ingress"),
        ([deployment(initContainers=[])], "initContainers"),
        ([deployment(hostNetwork=True)], "hostNetwork"),
        ([deployment(enableServiceLinks=True)], "enableServiceLinks"),
        ([deployment(containers=[{"name": "a"}, {"name": "b"}])], "2 containers"),
        ([deployment(volumes=[{"name": "v", "hostPath": {"path": "/"}}])], None),
        ([with_container(volumeMounts=[{"name": "v", "mountPath": "/v", "subPath": "x"}])], None),
        ([with_container(env=[{"name": "POD", "valueFrom": {"fieldRef": {}}}])], "POD"),
        ([with_container(envFrom=[{"secretRef": {"name": "s"}}])], "envFrom"),
        ([with_container(envFrom=[{"configMapRef": {"name": "missing"}}])], "missing"),
        ([with_container(securityContext={"privileged": True})], "privileged"),
        ([with_container(securityContext={"seccompProfile": {"type": "Unconfined"}})], "seccomp"),
        ([with_container(resources={"limits": {"nvidia.com/gpu": 1}})], "nvidia.com/gpu"),
        ([with_container(readinessProbe={"grpc": {"port": 9000}})], "grpc"),
        ([with_container(readinessProbe={"httpGet": {"port": 80, "scheme": "HTTPS"}})], "HTTP"),
        ([with_container(lifecycle={"postStart": {}})], "postStart"),
        ([with_container(resources={"limits": {"memory": "lots"}})], "lots"),
    ],
)
def test_what_docker_cannot_reproduce_is_refused_not_skipped(
    docs: list[Doc], message: str | None
) -> None:
    if docs[0]["kind"] == "Deployment" and any(
        "volumes" in docs[0]["spec"]["template"]["spec"] or "volumeMounts" in c
        for c in docs[0]["spec"]["template"]["spec"]["containers"]
    ):
        pod = docs[0]["spec"]["template"]["spec"]
        pod.setdefault("volumes", [{"name": "v", "hostPath": {"path": "/"}}])
        pod["containers"][0].setdefault("volumeMounts", [{"name": "v", "mountPath": "/v"}])
    with pytest.raises(Unsupported, match=message or "volume"):
        plan(docs)


def test_a_service_maps_its_port_to_the_named_target_port() -> None:
    service = {
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "team"},
        "spec": {"selector": {"app": "x"}, "ports": [{"port": 8080, "targetPort": "http"}]},
    }
    [planned] = plan([deployment(), service]).services
    assert planned.ports == {8080: 80}
    assert planned.aliases[:3] == ["web", "web.team", "web.team.svc"]


def test_a_service_that_selects_nothing_is_refused() -> None:
    service = {
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "other"}, "ports": [{"port": 80}]},
    }
    with pytest.raises(Unsupported, match="selects no workload"):
        plan([deployment(), service])


def test_an_hpa_sets_the_floor_and_the_ceiling() -> None:
    hpa = {
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "x"},
        "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": "x"},
            "minReplicas": 3,
            "maxReplicas": 9,
        },
    }
    [workload] = plan([deployment(), hpa]).workloads
    assert (workload.replicas, workload.max_replicas) == (3, 9)


def test_a_job_keeps_its_retry_budget_and_deadline() -> None:
    job = copy.deepcopy(deployment(restartPolicy="Never"))
    job["kind"] = "Job"
    job["spec"] = {
        "backoffLimit": 2,
        "activeDeadlineSeconds": 60,
        "template": job["spec"]["template"],
    }
    [workload] = plan([job]).workloads
    assert (workload.backoff_limit, workload.active_deadline) == (2, 60)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("512Mi", 512 * 2**20), ("1Gi", 2**30), ("500m", 0.5), ("1", 1), (2, 2), ("1.5", 1.5)],
)
def test_quantities(value: str | int, expected: float) -> None:
    assert quantity(value, "test") == expected


def test_dependent_variables_expand_from_earlier_entries() -> None:
    assert expand("$(HOST):$(PORT)/$(NOPE)", {"HOST": "h", "PORT": "1"}) == "h:1/$(NOPE)"

"""The kind overlay's pods as Docker SDK `containers.run` arguments.

The tests run each image with its manifest's own settings, never with flags typed by hand, so a
manifest change that would break the pod breaks them first: user and group, read-only root, no
privilege escalation, dropped capabilities, memory (no swap) and CPU limits, emptyDir as tmpfs,
env (ConfigMaps included), ports; and the probes' paths and timing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Doc = dict[str, Any]
COMPONENT = "app.kubernetes.io/component"  # the label that says what a workload is for
UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


@dataclass(frozen=True)
class Probe:
    """An HTTP probe of the kubelet, with Kubernetes' defaults."""

    path: str
    initial_delay: float
    period: float
    failure_threshold: int


@dataclass(frozen=True)
class Pod:
    """What the tests need of a workload's only container."""

    user: str | None
    read_only: bool
    no_new_privileges: bool
    cap_drop: list[str]
    memory: int
    nano_cpus: int
    environment: dict[str, str]
    ports: list[int]
    tmpfs: dict[str, str]
    probes: dict[str, Probe]
    grace_seconds: float


def quantity(value: str | int) -> float:
    """A Kubernetes quantity ('768Mi', '1Gi', '500m', '1') as a number."""
    text = str(value)
    if text.endswith("m"):
        return float(text[:-1]) / 1000
    unit = text[-2:]
    return float(text[:-2]) * UNITS[unit] if unit in UNITS else float(text)


def environment(container: Doc, docs: list[Doc]) -> dict[str, str]:
    """envFrom ConfigMaps first, then literal env entries, as the kubelet builds them."""
    maps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    env = {}
    for source in container.get("envFrom", []):
        env.update(maps[source["configMapRef"]["name"]])
    env.update({entry["name"]: str(entry["value"]) for entry in container.get("env", [])})
    return env


def tmpfs(pod: Doc, container: Doc) -> dict[str, str]:
    """Each emptyDir mount as a tmpfs with its size limit (the only volumes these pods use)."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {}
    for mount in container.get("volumeMounts", []):
        limit = volumes[mount["name"]]["emptyDir"].get("sizeLimit")
        size = f",size={int(quantity(limit))}" if limit else ""
        mounts[mount["mountPath"]] = f"rw,mode=1777{size}"
    return mounts


def pod(docs: list[Doc], component: str) -> Pod:
    """The container of the one workload labelled `component` (serving, training)."""
    [template] = [
        d["spec"]["template"]
        for d in docs
        if d["kind"] in {"Deployment", "Job"}
        and d["spec"]["template"]["metadata"]["labels"].get(COMPONENT) == component
    ]
    spec = template["spec"]
    [container] = spec["containers"]
    security = {**spec.get("securityContext", {}), **container.get("securityContext", {})}
    user, group = security.get("runAsUser"), security.get("runAsGroup")
    limits = container["resources"]["limits"]
    return Pod(
        user=None if user is None else f"{user}:{user if group is None else group}",
        read_only=security.get("readOnlyRootFilesystem", False),
        no_new_privileges=security.get("allowPrivilegeEscalation") is False,
        cap_drop=security.get("capabilities", {}).get("drop", []),
        memory=int(quantity(limits["memory"])),
        nano_cpus=int(quantity(limits["cpu"]) * 1e9),
        environment=environment(container, docs),
        ports=[int(port["containerPort"]) for port in container.get("ports", [])],
        tmpfs=tmpfs(spec, container),
        probes=probes(container),
        grace_seconds=float(spec.get("terminationGracePeriodSeconds", 30)),
    )


def probes(container: Doc) -> dict[str, Probe]:
    """The container's HTTP probes by kind (startup, readiness, liveness)."""
    return {
        kind: Probe(
            probe["httpGet"]["path"],
            probe.get("initialDelaySeconds", 0),
            probe.get("periodSeconds", 10),
            probe.get("failureThreshold", 3),
        )
        for kind in ("startup", "readiness", "liveness")
        if (probe := container.get(f"{kind}Probe"))
    }


def run_kwargs(spec: Pod) -> dict[str, Any]:
    """`containers.run` keyword arguments that reproduce the pod's settings; each port on a
    free loopback port. The image, command and network are the caller's."""
    return {
        "user": spec.user,
        "read_only": spec.read_only,
        "security_opt": ["no-new-privileges"] if spec.no_new_privileges else [],
        "cap_drop": spec.cap_drop,
        "mem_limit": spec.memory,
        "memswap_limit": spec.memory,  # no swap: the limit is a hard limit, as in the pod
        "nano_cpus": spec.nano_cpus,
        "environment": dict(spec.environment),
        "ports": {f"{port}/tcp": ("127.0.0.1", None) for port in spec.ports},
        "tmpfs": dict(spec.tmpfs),
    }


def startup_seconds(spec: Pod) -> float:
    """How long the kubelet lets the container start before it kills it (startup probe)."""
    probe = spec.probes.get("startup") or spec.probes["readiness"]
    return probe.initial_delay + probe.period * probe.failure_threshold

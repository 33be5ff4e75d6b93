"""The rendered kind overlay's pods as Docker SDK `containers.run` arguments.

The one derivation of the container flags: the smoke tests, the pod-spec test, the training
image test and the template's benchmarks all run images with these, never with flags typed by
hand, so a manifest change that would break the pod breaks them first. The reading of the
manifest is tools/pod_spec.py's (the rehearsal's).
"""

from __future__ import annotations

from typing import Any

from tools.pod_spec import Container, Doc, plan

COMPONENT = "app.kubernetes.io/component"  # the label that says what a workload is for


def pod(docs: list[Doc], component: str) -> Container:
    """The container of the one workload labelled `component` (serving, training...)."""
    found = [w for w in plan(docs).workloads if w.labels.get(COMPONENT) == component]
    assert len(found) == 1, f"{len(found)} workloads labelled {COMPONENT}={component}"
    return found[0].container


def run_kwargs(spec: Container) -> dict[str, Any]:
    """`containers.run` keyword arguments that reproduce the container's pod settings.

    User and group, read-only root, no privilege escalation, capabilities, memory with no swap,
    CPU, env (ConfigMaps included), each port published on a free loopback port, emptyDir as
    tmpfs. The image, command and network are the caller's.
    """
    tmpfs = {}
    for mount in spec.mounts:
        assert mount.kind == "tmpfs", f"{mount.target} is a {mount.kind}: map it here"
        size = f",size={mount.size}" if mount.size else ""
        tmpfs[mount.target] = f"{'ro' if mount.read_only else 'rw'},mode=1777{size}"
    return {
        "user": spec.user,
        "read_only": spec.read_only,
        "security_opt": ["no-new-privileges"] if spec.no_new_privileges else [],
        "cap_drop": spec.cap_drop,
        "cap_add": spec.cap_add,
        "mem_limit": spec.memory,
        "memswap_limit": spec.memory,  # no swap: the limit is a hard limit, as in the pod
        "nano_cpus": spec.nano_cpus,
        "environment": spec.environment,
        "ports": {f"{port}/tcp": ("127.0.0.1", None) for port in spec.ports.values()},
        "tmpfs": tmpfs,
    }


def startup_seconds(spec: Container) -> float:
    """How long the kubelet lets the container start before it kills it (startup probe)."""
    probe = spec.probes.get("startup") or spec.probes["readiness"]
    return probe.initial_delay + probe.period * probe.failure_threshold

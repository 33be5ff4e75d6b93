"""Start a bake's image exactly as its pod runs it, for the template's images tier and benchmarks.

The container flags are derived from the bake's rendered kind overlay through proof/pod_spec.py
(the rehearsal's strict reading), never typed by hand: user and group, read-only root, no
privilege escalation, capabilities, memory with no swap, CPU, env (ConfigMaps included), each
port published on a free loopback port, emptyDir as tmpfs.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from docker.models.containers import Container as DockerContainer

from proof.pod_spec import Container, Doc, plan, render
from proof.waiting import wait_until_ready

COMPONENT = "app.kubernetes.io/component"  # the label that says what a workload is for


def pod(docs: list[Doc], component: str) -> Container:
    """The container of the one workload labelled `component` (serving, training...)."""
    found = [w for w in plan(docs).workloads if w.labels.get(COMPONENT) == component]
    if len(found) != 1:
        raise ValueError(f"{len(found)} workloads labelled {COMPONENT}={component}")
    return found[0].container


def serving_pod(project: Path, *, cpus: bool = True) -> Container:
    """The serving container of the bake's rendered kind overlay.

    `cpus=False` lifts its CPU limit, for comparisons with a server that has none.
    """
    spec = pod(render(project / "k8s" / "overlays" / "kind"), "serving")
    return spec if cpus else dataclasses.replace(spec, nano_cpus=None)


def run_kwargs(spec: Container) -> dict[str, Any]:
    """`containers.run` keyword arguments that reproduce the container's pod settings.

    The image, command and network are the caller's; only emptyDir volumes are mapped (a pod
    with others is the rehearsal's to run).
    """
    tmpfs = {}
    for mount in spec.mounts:
        if mount.kind != "tmpfs":
            raise ValueError(f"{mount.target} is a {mount.kind}: only emptyDir maps to tmpfs here")
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


@dataclass(frozen=True)
class Server:
    """A running container and the loopback URL its first pod port is published on."""

    container: DockerContainer
    url: str

    def inspect(self) -> dict[str, Any]:
        """The engine's current view of the container (`docker inspect`)."""
        self.container.reload()
        attrs: dict[str, Any] = self.container.attrs
        return attrs

    def running(self) -> bool:
        return self.inspect()["State"]["Running"] is True

    def logs(self) -> str:
        """The tail of the container's stdout and stderr."""
        return str(self.container.logs(tail=60).decode(errors="replace"))

    def predict_example(self) -> tuple[list[Any], list[Any]]:
        """POST the model's own example (from /metadata) to /predict: its rows and the answers."""
        # S310: loopback URLs of a container this process started.
        with urllib.request.urlopen(f"{self.url}/metadata", timeout=10) as answer:  # noqa: S310
            rows: list[Any] = json.load(answer)["example"]["instances"]
        body = json.dumps({"instances": rows}).encode()
        request = urllib.request.Request(  # noqa: S310
            f"{self.url}/predict", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            predictions: list[Any] = json.load(answer)["predictions"]
        return rows, predictions


@contextmanager
def started(
    engine: docker.DockerClient, image: str, spec: Container, **options: Any
) -> Iterator[Server]:
    """`image` started detached under `spec`'s pod settings (and `containers.run` `options`),
    removed afterwards."""
    container = engine.containers.run(image, detach=True, **run_kwargs(spec), **options)
    try:
        container.reload()  # the published ports are known once it started
        [binding] = container.ports[f"{next(iter(spec.ports.values()))}/tcp"]
        yield Server(container, f"http://127.0.0.1:{binding['HostPort']}")
    finally:
        container.remove(force=True)


@contextmanager
def ready(
    engine: docker.DockerClient, image: str, spec: Container, **options: Any
) -> Iterator[Server]:
    """A container of `image` that passed its readiness probe within the startup budget."""
    with started(engine, image, spec, **options) as server:
        wait_until_ready(
            server.url + spec.probes["readiness"].path,
            timeout=startup_seconds(spec),
            alive=server.running,
            details=server.logs,
        )
        yield server

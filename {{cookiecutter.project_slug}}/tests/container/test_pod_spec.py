"""Run the serving image under exactly the settings of the rendered kind Deployment.

The `docker run` flags are derived from `kubectl kustomize k8s/overlays/kind` through the same
reading the rehearsal uses (tools/pod_spec.py: user and group, read-only root, capabilities, no
privilege escalation, CPU and memory limits with no swap, env and ConfigMap env, port, emptyDir
-> tmpfs), never written by hand, so a manifest change that would break the pod breaks this test
first. Run by `nox -s smoke` (which sets SERVE_IMAGE).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tools.pod_spec import (
    Container,
    Doc,
    plan,
)

pytestmark = pytest.mark.docker

DEPLOYMENT = "{{ cookiecutter.project_slug }}"


def need(tool: str) -> str:
    """A tool on PATH; missing: fail in CI, skip elsewhere (as the docker fixture does)."""
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} not found on PATH: install it to run the pod-spec test"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def docker_cli() -> str:
    """The docker CLI with an engine answering: fail in CI, skip elsewhere."""
    cli = need("docker")
    if subprocess.run([cli, "info"], capture_output=True, check=False, timeout=60).returncode:
        message = "no Docker engine answers"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return cli


def serving(docs: list[Doc]) -> Container:
    """The serving Deployment's container, as the rehearsal reads it (tools/pod_spec.py)."""
    [workload] = [w for w in plan(docs).workloads if w.title == f"Deployment/{DEPLOYMENT}"]
    return workload.container


def docker_run_args(docs: list[Doc]) -> list[str]:
    """The `docker run` options that reproduce the serving container's pod settings."""
    spec = serving(docs)
    args = ["--user", spec.user] if spec.user else []
    args += ["--read-only"] if spec.read_only else []
    args += ["--security-opt", "no-new-privileges"] if spec.no_new_privileges else []
    args += [f"--cap-drop={cap}" for cap in spec.cap_drop]
    args += [f"--cap-add={cap}" for cap in spec.cap_add]
    if spec.memory is not None:
        args += ["--memory", str(spec.memory), "--memory-swap", str(spec.memory)]
    if spec.nano_cpus is not None:
        args += ["--cpus", str(spec.nano_cpus / 1e9)]
    for key, value in sorted(spec.environment.items()):
        args += ["--env", f"{key}={value}"]
    for port in spec.ports.values():
        args += ["--publish", f"127.0.0.1::{port}"]
    for mount in spec.mounts:
        assert mount.kind == "tmpfs", f"{mount.target} is a {mount.kind}: map it here"
        size = f",size={mount.size}" if mount.size else ""
        args += ["--tmpfs", f"{mount.target}:rw,mode=1777{size}"]
    return args


def get(url: str, body: object | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_for(url: str, attempts: int) -> int:
    """Poll like a kubelet probe (every second); return the last status."""
    status = 0
    for _ in range(attempts):
        try:
            status, _ = get(url)
        except OSError:
            status = 0
        if status == 200:
            break
        time.sleep(1)
    return status


@pytest.fixture(scope="module")
def pod(kind_overlay: list[Doc], docker_cli: str) -> Iterator[tuple[str, str]]:
    """The serving image running as the Deployment says; yields (container id, base URL)."""
    image = os.environ.get("SERVE_IMAGE")
    if not image:
        pytest.fail("SERVE_IMAGE is not set: run this test through `nox -s smoke`")
    args = docker_run_args(kind_overlay)
    container = subprocess.run(
        [docker_cli, "run", "--detach", *args, image], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        port = rendered_port(kind_overlay)
        published = subprocess.run(
            [docker_cli, "port", container, f"{port}/tcp"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[0]
        yield container, f"http://{published}"
    finally:
        subprocess.run([docker_cli, "rm", "--force", container], capture_output=True, check=False)


def rendered_port(docs: list[Doc]) -> int:
    return next(iter(serving(docs).ports.values()))


def logs(docker_cli: str, container: str) -> str:
    result = subprocess.run(
        [docker_cli, "logs", container], capture_output=True, text=True, check=False
    )
    return (result.stdout + result.stderr)[-3000:]


def test_run_args_come_from_the_manifest(kind_overlay: list[Doc]) -> None:
    args = docker_run_args(kind_overlay)
    assert args[:2] == ["--user", "10001:10001"]
    assert {"--read-only", "--cap-drop=ALL", "no-new-privileges"} <= set(args)
    assert any(a.startswith("/tmp:rw,mode=1777,size=") for a in args)  # noqa: S108 - the pod's tmpfs
    assert "MODEL_URI=/app/model" in args


def test_pod_becomes_ready_on_its_probe_paths(
    pod: tuple[str, str], kind_overlay: list[Doc], docker_cli: str
) -> None:
    container, base = pod
    probes = serving(kind_overlay).probes
    startup = probes["startup"]
    attempts = int(startup.period * startup.failure_threshold)
    for kind, probe in probes.items():
        assert wait_for(base + probe.path, attempts) == 200, (
            f"{kind} probe {probe.path}\n{logs(docker_cli, container)}"
        )


def test_pod_answers_predict(
    pod: tuple[str, str], kind_overlay: list[Doc], docker_cli: str
) -> None:
    container, base = pod
    readiness = serving(kind_overlay).probes["readiness"].path
    assert wait_for(base + readiness, 60) == 200, logs(docker_cli, container)
    status, metadata = get(f"{base}/metadata")
    assert status == 200, metadata
    status, body = get(f"{base}/predict", metadata["example"])
    assert status == 200, body
    assert len(body["predictions"]) == len(metadata["example"]["instances"])


def test_pod_stops_cleanly_within_its_grace_period(
    pod: tuple[str, str], kind_overlay: list[Doc], docker_cli: str
) -> None:
    container, _ = pod
    grace = int(serving(kind_overlay).grace_seconds)
    subprocess.run(
        [docker_cli, "stop", "--time", str(grace), container], check=True, capture_output=True
    )
    state = json.loads(
        subprocess.run(
            [docker_cli, "inspect", "--format", "{{ '{{json .State}}' }}", container],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    # Exit 137 would mean SIGKILL after the grace period: the drain did not finish in time.
    assert state["ExitCode"] == 0, f"exit {state['ExitCode']}\n{logs(docker_cli, container)}"

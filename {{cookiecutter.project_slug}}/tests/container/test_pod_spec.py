"""Run the serving image under exactly the settings of the rendered kind Deployment.

The `docker run` flags are derived from `kubectl kustomize k8s/overlays/kind` (user and group,
read-only root, capabilities, no privilege escalation, CPU and memory limits, env and ConfigMap
env, port, emptyDir -> tmpfs), never written by hand, so a manifest change that would break the
pod breaks this test first. Run by `nox -s smoke` (which sets SERVE_IMAGE).
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
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENT = "{{ cookiecutter.project_slug }}"
Doc = dict[str, Any]


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


@pytest.fixture(scope="module")
def rendered() -> list[Doc]:
    """The kind overlay as the cluster receives it."""
    out = subprocess.run(
        [need("kubectl"), "kustomize", str(ROOT / "k8s" / "overlays" / "kind")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def quantity_bytes(value: str) -> int:
    """A Kubernetes memory quantity (128974848, 129M, 123Mi, 1Gi) in bytes."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return int(float(value[: -len(suffix)]) * factor)
    return int(value)


def quantity_cpus(value: str) -> str:
    """A Kubernetes CPU quantity ('500m', '1', '1.5') as docker's --cpus value."""
    return str(int(value[:-1]) / 1000) if value.endswith("m") else str(float(value))


def pod_settings(docs: list[Doc]) -> tuple[Doc, Doc]:
    """(pod spec, serving container) of the serving Deployment."""
    [deployment] = [
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == DEPLOYMENT
    ]
    pod = deployment["spec"]["template"]["spec"]
    return pod, pod["containers"][0]


def docker_run_args(docs: list[Doc]) -> list[str]:
    """The `docker run` options that reproduce the serving container's pod settings."""
    pod, container = pod_settings(docs)
    security = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    args = ["--user", f"{security['runAsUser']}:{security['runAsGroup']}"]
    if security.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    if security.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    capabilities = security.get("capabilities", {})
    args += [f"--cap-drop={cap}" for cap in capabilities.get("drop", [])]
    args += [f"--cap-add={cap}" for cap in capabilities.get("add", [])]
    limits = container["resources"]["limits"]
    args += [
        "--memory",
        str(quantity_bytes(limits["memory"])),
        "--cpus",
        quantity_cpus(limits["cpu"]),
    ]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        [configmap] = [
            d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name
        ]
        env.update(configmap["data"])
    env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    for key, value in sorted(env.items()):
        args += ["--env", f"{key}={value}"]
    for port in container["ports"]:
        args += ["--publish", f"127.0.0.1::{port['containerPort']}"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        empty_dir = volumes[mount["name"]].get("emptyDir")
        assert empty_dir is not None, f"volume {mount['name']} is not an emptyDir: map it here"
        size = quantity_bytes(empty_dir.get("sizeLimit", "64Mi"))
        args += ["--tmpfs", f"{mount['mountPath']}:rw,size={size},mode=1777"]
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
def pod(rendered: list[Doc], docker_cli: str) -> Iterator[tuple[str, str]]:
    """The serving image running as the Deployment says; yields (container id, base URL)."""
    image = os.environ.get("SERVE_IMAGE")
    if not image:
        pytest.fail("SERVE_IMAGE is not set: run this test through `nox -s smoke`")
    args = docker_run_args(rendered)
    container = subprocess.run(
        [docker_cli, "run", "--detach", *args, image], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        port = rendered_port(rendered)
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
    return int(pod_settings(docs)[1]["ports"][0]["containerPort"])


def logs(docker_cli: str, container: str) -> str:
    result = subprocess.run(
        [docker_cli, "logs", container], capture_output=True, text=True, check=False
    )
    return (result.stdout + result.stderr)[-3000:]


def test_run_args_come_from_the_manifest(rendered: list[Doc]) -> None:
    args = docker_run_args(rendered)
    assert args[:2] == ["--user", "10001:10001"]
    assert {"--read-only", "--cap-drop=ALL", "no-new-privileges"} <= set(args)
    assert any(a.startswith("/tmp:rw,size=") for a in args)  # noqa: S108 - the pod's tmpfs
    assert "MODEL_URI=/app/model" in args


def test_pod_becomes_ready_on_its_probe_paths(
    pod: tuple[str, str], rendered: list[Doc], docker_cli: str
) -> None:
    container, base = pod
    _, spec = pod_settings(rendered)
    startup = spec["startupProbe"]
    attempts = startup["periodSeconds"] * startup["failureThreshold"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        path = spec[probe]["httpGet"]["path"]
        assert wait_for(base + path, attempts) == 200, (
            f"{probe} {path}\n{logs(docker_cli, container)}"
        )


def test_pod_answers_predict(pod: tuple[str, str], rendered: list[Doc], docker_cli: str) -> None:
    container, base = pod
    readiness = pod_settings(rendered)[1]["readinessProbe"]["httpGet"]["path"]
    assert wait_for(base + readiness, 60) == 200, logs(docker_cli, container)
    status, metadata = get(f"{base}/metadata")
    assert status == 200, metadata
    status, body = get(f"{base}/predict", metadata["example"])
    assert status == 200, body
    assert len(body["predictions"]) == len(metadata["example"]["instances"])


def test_pod_stops_cleanly_within_its_grace_period(
    pod: tuple[str, str], rendered: list[Doc], docker_cli: str
) -> None:
    container, _ = pod
    spec, _ = pod_settings(rendered)
    grace = spec["terminationGracePeriodSeconds"]
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

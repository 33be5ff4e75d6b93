"""Run the serving image under exactly the settings of the rendered kind Deployment.

The container settings come from `kubectl kustomize k8s/overlays/kind` through the one
translation to Docker SDK arguments (tests/container/pod.py) every container test uses: user and
group, read-only root, capabilities, no privilege escalation, CPU and memory limits with no swap,
env and ConfigMap env, port, emptyDir -> tmpfs. Run by `nox -s smoke` (which sets SERVE_IMAGE).
"""

from __future__ import annotations

import docker

from ..waiting import wait_until_ready
from .containers import started
from .pod import Pod, run_kwargs, startup_seconds


def test_run_kwargs_come_from_the_manifest(serving_pod: Pod) -> None:
    kwargs = run_kwargs(serving_pod)
    assert kwargs["user"] == "10001:10001"
    assert (kwargs["read_only"], kwargs["cap_drop"]) == (True, ["ALL"])
    assert kwargs["security_opt"] == ["no-new-privileges"]
    assert kwargs["mem_limit"] == kwargs["memswap_limit"] == serving_pod.memory
    assert kwargs["tmpfs"]["/tmp"].startswith("rw,mode=1777,size=")  # noqa: S108 - the pod's tmpfs
    assert kwargs["environment"]["MODEL_URI"] == "/app/model"
    assert kwargs["ports"] == {"8000/tcp": ("127.0.0.1", None)}


def test_pod_becomes_ready_on_its_probe_paths(
    engine: docker.DockerClient, serve_image: str, serving_pod: Pod
) -> None:
    with started(engine, serve_image, serving_pod) as server:
        # Each probe answers within what the kubelet allows before it restarts the container,
        # polled at the probe's own period.
        for probe in serving_pod.probes.values():
            wait_until_ready(
                server.url + probe.path,
                timeout=startup_seconds(serving_pod),
                alive=server.running,
                details=server.logs,
                interval=probe.period,
            )

"""Start the serving image with the pod's restrictions and talk to it over HTTP."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

# What k8s/base/deployment.yaml gives the serving container.
POD_OPTIONS = (
    "--user=10001:10001",
    "--read-only",
    "--tmpfs=/tmp:rw,nosuid,nodev,size=64m",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
    "--memory=768m",
    "--cpus=1",
)
# Timeouts sized from measurements: 10 cold starts of the serving image on a 2-core host at load
# ~8, with a busy loop pinned to the other core. /readyz answered 200 after 5.6-14.2 s; the first
# /metadata and /predict took <= 0.03 s, `docker exec` of the healthcheck <= 2.8 s, `docker stop`
# <= 1.5 s. Each timeout is at least 3x the worst figure.
READY_SECONDS = 60  # 4x 14.2 s, and what the pod's startup probe allows
REQUEST_SECONDS = 10  # an answer, not a computation: 300x the worst
DOCKER_SECONDS = 120  # docker CLI calls (run, exec, inspect): 40x the slowest exec
GRACE_SECONDS = 30  # the pod's terminationGracePeriodSeconds


def docker(*args: str, timeout: float = DOCKER_SECONDS) -> str:
    """Run the docker CLI and return its stdout; fail the test with stderr if it fails."""
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
    return result.stdout.strip()


@dataclass(frozen=True)
class Reply:
    """An HTTP status and the decoded JSON body (None when the body is not JSON)."""

    status: int
    body: Any


@dataclass(frozen=True)
class Container:
    """A running container and the loopback URL its port 8000 is published on."""

    id: str
    url: str

    def request(self, path: str, body: bytes | None = None, content_type: str = "") -> Reply:
        """GET `path`, or POST `body` to it; HTTP errors are replies, not exceptions."""
        headers = {"Content-Type": content_type} if content_type else {}
        request = urllib.request.Request(f"{self.url}{path}", data=body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_SECONDS) as response:
                return Reply(response.status, _json(response.read()))
        except urllib.error.HTTPError as error:
            return Reply(error.code, _json(error.read()))

    def post_json(self, path: str, payload: Any) -> Reply:
        """POST `payload` as JSON."""
        return self.request(path, json.dumps(payload).encode(), "application/json")

    def inspect(self) -> dict[str, Any]:
        """`docker inspect` of the container."""
        state: dict[str, Any] = json.loads(docker("inspect", self.id))[0]
        return state

    def wait_ready(self) -> None:
        """Poll /readyz until 200; fail with the logs if the container exits or takes too long."""
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            if not self.inspect()["State"]["Running"]:
                pytest.fail(f"the container exited before it was ready:\n{self.logs()}")
            try:
                if self.request("/readyz").status == 200:
                    return
            except OSError:
                pass  # not listening yet
            time.sleep(0.2)
        pytest.fail(f"/readyz did not answer 200 within {READY_SECONDS} s:\n{self.logs()}")

    def logs(self) -> str:
        """The container's stdout and stderr."""
        result = subprocess.run(
            ["docker", "logs", self.id], capture_output=True, text=True, timeout=30, check=False
        )
        return (result.stdout + result.stderr)[-4000:]


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def start(image: str, *options: str) -> Container:
    """Start `image` detached with the pod's restrictions, port 8000 on a free loopback port."""
    container_id = docker(
        "run", "--detach", *POD_OPTIONS, "--publish=127.0.0.1::8000", *options, image
    )
    address = docker("port", container_id, "8000/tcp").splitlines()[0]
    return Container(container_id, f"http://{address}")


@contextmanager
def ready(image: str, *options: str) -> Iterator[Container]:
    """A container of `image` (see `start`) that answers /readyz; removed afterwards."""
    container = start(image, *options)
    try:
        container.wait_ready()
        yield container
    finally:
        docker("rm", "--force", container.id)

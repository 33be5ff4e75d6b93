"""Start an image with its pod's settings through the Docker SDK and talk to it over HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import docker
from docker.models.containers import Container as DockerContainer

from ..waiting import wait_until_ready
from .pod import Pod, run_kwargs, startup_seconds

# Measured: 10 cold starts of the serving image on a 2-core host at load ~8 answered /readyz
# after 5.6-14.2 s (the pod's startup probe allows 60 s); the first /metadata and /predict
# took <= 0.03 s.
REQUEST_SECONDS = 10  # an answer, not a computation: 300x the worst


@dataclass(frozen=True)
class Reply:
    """An HTTP status and the decoded JSON body (None when the body is not JSON)."""

    status: int
    body: Any


@dataclass(frozen=True)
class Server:
    """A running container and the loopback URL its pod port is published on."""

    container: DockerContainer
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
        """The engine's current view of the container (`docker inspect`)."""
        self.container.reload()
        attrs: dict[str, Any] = self.container.attrs
        return attrs

    def running(self) -> bool:
        return self.inspect()["State"]["Running"] is True

    def exec(self, *command: str) -> tuple[int, str]:
        """Run `command` in the container as its user: (exit code, stdout and stderr)."""
        exit_code, output = self.container.exec_run(list(command))
        return int(exit_code), output.decode(errors="replace").strip()

    def logs(self) -> str:
        """The tail of the container's stdout and stderr."""
        return str(self.container.logs(tail=60).decode(errors="replace"))


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def start(engine: docker.DockerClient, image: str, spec: Pod, **options: Any) -> Server:
    """Start `image` detached under `spec`'s pod settings (and `containers.run` `options`,
    such as volumes); its first port on loopback."""
    container = engine.containers.run(image, detach=True, **run_kwargs(spec), **options)
    container.reload()  # the published ports are known once it started
    port = spec.ports[0]
    [binding] = container.ports[f"{port}/tcp"]
    return Server(container, f"http://127.0.0.1:{binding['HostPort']}")


@contextmanager
def started(engine: docker.DockerClient, image: str, spec: Pod, **options: Any) -> Iterator[Server]:
    """A container of `image` (see `start`), removed afterwards."""
    server = start(engine, image, spec, **options)
    try:
        yield server
    finally:
        server.container.remove(force=True)


@contextmanager
def ready(engine: docker.DockerClient, image: str, spec: Pod, **options: Any) -> Iterator[Server]:
    """A container of `image` that passed its readiness probe, within the startup budget."""
    with started(engine, image, spec, **options) as server:
        wait_until_ready(
            server.url + spec.probes["readiness"].path,
            timeout=startup_seconds(spec),
            alive=server.running,
            details=server.logs,
        )
        yield server

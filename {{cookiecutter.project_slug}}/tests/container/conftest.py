"""Fixtures for the container tests: the Docker engine, the images, the pods' settings.

`nox -s smoke` sets SERVE_IMAGE and TRAINING_IMAGE to the images `nox -s build` made for this
commit. Every test in this folder needs a Docker engine and is marked `docker`, so
`nox -s tests` (`-m "not docker"`) leaves them out. Containers run with the settings of the
rendered kind overlay (tests/container/pod.py), so these also need kubectl.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.errors import DockerException, ImageNotFound

from .containers import Server, ready
from .pod import Doc, Pod, pod

HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test in this folder `docker`: they all run containers."""
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def engine() -> Iterator[docker.DockerClient]:
    """A Docker SDK client whose engine answers: fail in CI without one, skip elsewhere."""
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except DockerException as error:
        message = f"no Docker engine answers: {error}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield client
    finally:
        client.close()


def local_image(engine: docker.DockerClient, variable: str) -> str:
    """The image reference in `variable`; it must be set and exist locally."""
    image = os.environ.get(variable, "")
    if not image:
        pytest.fail(f"{variable} is not set: run these tests with `nox -s build smoke`")
    try:
        engine.images.get(image)
    except ImageNotFound:
        pytest.fail(f"{variable}={image} is not a local image: build it with `nox -s build`")
    return image


@pytest.fixture(scope="session")
def serve_image(engine: docker.DockerClient) -> str:
    """The serving image under test, from SERVE_IMAGE."""
    return local_image(engine, "SERVE_IMAGE")


@pytest.fixture(scope="session")
def training_image(engine: docker.DockerClient) -> str:
    """The training image under test, from TRAINING_IMAGE."""
    return local_image(engine, "TRAINING_IMAGE")


@pytest.fixture(scope="session")
def image_config(engine: docker.DockerClient, serve_image: str) -> dict[str, Any]:
    """The serving image's configuration (`docker image inspect` .Config)."""
    config: dict[str, Any] = engine.images.get(serve_image).attrs["Config"]
    return config


@pytest.fixture(scope="session")
def serving_pod(kind_overlay: list[Doc]) -> Pod:
    """The serving Deployment's container as the kind overlay renders it."""
    return pod(kind_overlay, "serving")


@pytest.fixture(scope="session")
def training_pod(kind_overlay: list[Doc]) -> Pod:
    """The training Job's container as the kind overlay renders it."""
    return pod(kind_overlay, "training")


@pytest.fixture(scope="module")
def server(engine: docker.DockerClient, serve_image: str, serving_pod: Pod) -> Iterator[Server]:
    """One ready serving container, shared by a module's read-only tests."""
    with ready(engine, serve_image, serving_pod) as running:
        yield running


@pytest.fixture
def own_server(engine: docker.DockerClient, serve_image: str, serving_pod: Pod) -> Iterator[Server]:
    """A ready serving container for one test that may stop it."""
    with ready(engine, serve_image, serving_pod) as running:
        yield running

"""Fixtures for the container tests: the serving image and containers running it.

`nox -s smoke` sets SERVE_IMAGE (and TRAINING_IMAGE) to the images `nox -s build` made for
this commit. Every test in this folder needs a Docker engine and is marked `docker`, so
`nox -s tests` (`-m "not docker"`) leaves them out.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .containers import Container, docker, ready

HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test in this folder `docker`: they all run containers."""
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def serve_image() -> str:
    """The serving image under test, from SERVE_IMAGE; it must exist locally."""
    image = os.environ.get("SERVE_IMAGE", "")
    if not image:
        pytest.fail(
            "SERVE_IMAGE is not set: run these tests with `nox -s smoke` after `nox -s build`"
        )
    docker("image", "inspect", image)
    return image


@pytest.fixture(scope="session")
def image_config(serve_image: str) -> dict[str, Any]:
    """The serving image's configuration (`docker image inspect` .Config)."""
    config: dict[str, Any] = json.loads(docker("image", "inspect", serve_image))[0]["Config"]
    return config


@pytest.fixture(scope="module")
def server(serve_image: str) -> Iterator[Container]:
    """One ready serving container, shared by a module's read-only tests."""
    with ready(serve_image) as container:
        yield container


@pytest.fixture
def own_server(serve_image: str) -> Iterator[Container]:
    """A ready serving container for one test that may stop it."""
    with ready(serve_image) as container:
        yield container

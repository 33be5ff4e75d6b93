"""Fixtures for the serving tests: the exported model loaded once, settings and an HTTP client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from {{ cookiecutter.package_name }}.config import (
    ServeSettings,
)
from {{ cookiecutter.package_name }}.serve.app import (
    create_app,
)
from {{ cookiecutter.package_name }}.serve.loading import (
    load_model,
)
from {{ cookiecutter.package_name }}.serve.model import (
    ServedModel,
)


@pytest.fixture(scope="session")
def served_model(exported_model: Path) -> ServedModel:
    """The exported model, loaded the way the server loads it."""
    return load_model(str(exported_model))


@pytest.fixture(scope="session")
def example_rows(exported_model: Path) -> list[dict[str, Any]]:
    """The input example MLflow saved with the model, as feature -> value records."""
    example = json.loads((exported_model / "input_example.json").read_text())
    return [dict(zip(example["columns"], row, strict=True)) for row in example["data"]]


@pytest.fixture
def settings(exported_model: Path) -> ServeSettings:
    """Serving settings for the exported model, with small limits so tests can pass them."""
    return ServeSettings(
        model_uri=str(exported_model),
        max_batch_size=50,
        max_body_bytes=64 * 1024,
    )


@pytest.fixture
def client(settings: ServeSettings, served_model: ServedModel) -> Iterator[TestClient]:
    """A client of an app already serving the exported model (no background load)."""
    with TestClient(create_app(settings, model=served_model)) as test_client:
        yield test_client

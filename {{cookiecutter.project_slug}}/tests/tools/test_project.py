"""The one home for names and the image tag rule (tools/project.py)."""

from __future__ import annotations

import re
import tomllib

import pytest

from tools import project
from tools.project import PYPROJECT, image_ref, image_tag, names, registry


def test_names_are_pyprojects_tool_mlops_table() -> None:
    table = tomllib.loads(PYPROJECT.read_text())["tool"]["mlops"]
    the = names()
    assert (the.image, the.registry, the.namespace) == (
        table["image"],
        table["registry"],
        table["namespace"],
    )
    assert list(the.dockerfiles) == [the.image, f"{the.image}-train"]


def test_the_tag_is_the_one_ci_gives_the_commit() -> None:
    tag = image_tag()
    sha = project.git("rev-parse", "--short=7", "HEAD")
    assert tag == (f"sha-{sha}" if sha else "dev")
    assert re.fullmatch(r"sha-[0-9a-f]{7}|dev", tag)
    assert image_ref(names().image) == f"{names().image}:{tag}"


def test_outside_git_the_tag_is_dev(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_DIR", "/nonexistent")
    assert image_tag() == "dev"


def test_registry_from_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REGISTRY", raising=False)
    assert registry() == names().registry
    monkeypatch.setenv("REGISTRY", "localhost:5000")
    assert registry() == "localhost:5000"


def test_an_image_nobody_built_says_to_build_it() -> None:
    ref = "no-such-image-anywhere:sha-0000000"
    assert (
        project.unbuilt([ref])
        == f"image {ref} not found: build it for this commit with `nox -s build`"
    )

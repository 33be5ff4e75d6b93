"""Bake the template with every option and check what comes out."""

from __future__ import annotations

import ast
import itertools
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.conftest import TEMPLATE, bake

SPEC = json.loads((TEMPLATE / "cookiecutter.json").read_text())
CHOICES = {key: value for key, value in SPEC.items() if isinstance(value, list)}
# Every combination of every choice, generated so a new choice value is covered by itself.
COMBINATIONS = [
    dict(zip(CHOICES, values, strict=True)) for values in itertools.product(*CHOICES.values())
]
# Jinja that survived rendering. Other tools' braces are meant to survive: GitHub's
# `${{ }}` and docker/metadata-action's `{{version}}` (kept from Jinja by `{% raw %}`).
LEFTOVER_JINJA = re.compile(r"\{%|%\}|\{#|#\}|\{\{-?\s*cookiecutter|cookiecutter\.")


def files(project: Path) -> list[Path]:
    return sorted(p for p in project.rglob("*") if p.is_file())


def relative(project: Path) -> set[str]:
    return {p.relative_to(project).as_posix() for p in files(project)}


def check_rendered(project: Path) -> None:
    for path in files(project):
        text = path.read_text()
        leftover = LEFTOVER_JINJA.search(text)
        assert leftover is None, f"{path.relative_to(project)} keeps Jinja: {leftover.group(0)!r}"
        if path.suffix == ".py":
            ast.parse(text, filename=str(path))
        elif path.suffix in {".yaml", ".yml"}:
            list(yaml.safe_load_all(text))
        elif path.suffix == ".toml":
            tomllib.loads(text)
        elif path.suffix == ".json":
            json.loads(text)


@pytest.mark.parametrize("answers", COMBINATIONS, ids=["-".join(c.values()) for c in COMBINATIONS])
def test_every_combination_renders_clean(tmp_path: Path, answers: dict[str, str]) -> None:
    project = bake(tmp_path, **answers)
    check_rendered(project)
    assert (project / ".python-version").read_text().strip() == answers["python_version"]
    package = project / "src" / "ml_service"
    assert f'ModelType("{answers["model"]}")' in (package / "config.py").read_text()
    assert (project / "LICENSE").exists() == (answers["license"] != "Proprietary")
    metadata = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert metadata.get("license", "Proprietary") == answers["license"]


def test_default_bake_writes_exactly_these_files(default_project: Path) -> None:
    expected = set(Path(__file__).with_name("expected_files.txt").read_text().split())
    actual = relative(default_project)
    assert actual - expected == set(), "files nobody expected"
    assert expected - actual == set(), "files missing"


def test_top_level_is_what_users_are_promised(default_project: Path) -> None:
    top = {p.name for p in default_project.iterdir()}
    promised = {".github", "noxfile.py", "src", "Dockerfile", "Dockerfile.train", "k8s", "tests"}
    promised |= {"README.md", "pyproject.toml", ".dockerignore", "uv.lock"}
    assert promised <= top


def test_answers_reach_every_file_and_no_default_is_hard_coded(tmp_path: Path) -> None:
    answers = {
        "project_name": "Fraud Scorer",
        "package_name": "scorer",
        "description": "Scores card payments.",
        "author_name": "Ada Lovelace",
        "author_email": "ada@analytical.example",
        "github_owner": "Analytical-Engines",
        "image_name": "payments/fraud-scorer",
        "k8s_namespace": "payments",
        "replicas": "3",
        "max_replicas": "9",
    }
    project = bake(tmp_path, **answers)
    check_rendered(project)
    defaults = [
        SPEC["author_name"],
        SPEC["author_email"],
        SPEC["github_owner"],
        "ML Service",
        "ml-service",
        "ml_service",
    ]
    for path in files(project):
        name = path.relative_to(project).as_posix()
        text = path.read_text()
        for default in defaults:
            assert default not in name, f"{name}: file name keeps the default {default!r}"
            assert default not in text, f"{name} hard-codes the default {default!r}"
    assert (project / "src" / "scorer" / "config.py").exists()
    # GHCR wants lowercase; the owner may have capitals.
    assert 'DEFAULT_REGISTRY = "ghcr.io/analytical-engines"' in (project / "noxfile.py").read_text()


def test_long_answers_still_give_lint_clean_code(tmp_path: Path) -> None:
    long = "a-very-long-project-slug-that-tests-line-lengths-everywhere-x"
    project = bake(
        tmp_path,
        project_name="A Very Long Project Name That Tests Line Lengths Everywhere In The Code",
        project_slug=long,
        image_name=f"some-team/{long}",
        image_registry="registry.some-long-domain.example.com:5443/platform/teams",
        k8s_namespace=long,
        description="A description long enough to overflow any line it were pasted into, " * 3,
    )
    for command in (["ruff", "check", "."], ["ruff", "format", "--check", "."]):
        result = subprocess.run(command, cwd=project, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


INVALID = [
    ({"project_slug": "ML Service"}, "project_slug"),
    ({"project_slug": "9lives"}, "project_slug"),
    ({"package_name": "class"}, "package_name"),
    ({"package_name": "json"}, "package_name"),
    ({"image_name": "Bad_Image"}, "image_name"),
    ({"image_registry": "https://ghcr.io/x"}, "image_registry"),
    ({"author_email": "not-an-email"}, "author_email"),
    ({"replicas": "0"}, "replicas"),
    ({"replicas": "many"}, "replicas"),
    ({"replicas": "4", "max_replicas": "3"}, "max_replicas"),
    ({"k8s_namespace": "Prod_NS"}, "k8s_namespace"),
]


@pytest.mark.parametrize(("answers", "field"), INVALID, ids=[f for _, f in INVALID])
def test_bad_answers_stop_with_one_line_and_leave_nothing(
    tmp_path: Path, answers: dict[str, str], field: str
) -> None:
    args = [f"{key}={value}" for key, value in answers.items()]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cookiecutter",
            "--no-input",
            "-o",
            str(tmp_path),
            str(TEMPLATE),
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR: ")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"ERROR: {field} "), result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == [], "a rejected bake left files behind"

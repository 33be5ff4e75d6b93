"""Bake the template with every option and check what comes out."""

from __future__ import annotations

import ast
import html
import itertools
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path

import pytest
import yaml
from markdown_it import MarkdownIt

from hooks import formats, validation
from tests.conftest import TEMPLATE, bake, nox, run

SPEC = json.loads((TEMPLATE / "cookiecutter.json").read_text())
CHOICES = validation.CHOICES
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


def as_written(answers: Iterable[str]) -> set[str]:
    """Each answer as every format writes it (a literal's quotes dropped, for a substring)."""
    escapes = [str, *formats.FILTERS.values()]
    written = {escape(answer) for answer in answers for escape in escapes}
    return written | {text[1:-1] for text in written if text[:1] in "\"'"}


def check_rendered(project: Path, answers: Iterable[str] = ()) -> None:
    """Every file parses; Jinja left in a file is a bug, unless an answer wrote it there."""
    written = sorted(as_written(answers), key=len, reverse=True)
    for path in files(project):
        text = path.read_text()
        template_text = text
        for answer in written:
            template_text = template_text.replace(answer, "")
        leftover = LEFTOVER_JINJA.search(template_text)
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
    config = (package / "config.py").read_text()
    assert f'ModelType("{answers["model"]}")' in config
    assert f'TASK = Task("{answers["task"]}")' in config
    readme = (project / "README.md").read_text()
    assert f"`{answers['model']}` {answers['task']} pipeline" in readme
    assert (project / "LICENSE").exists() == (answers["license"] != "Proprietary")
    metadata = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert metadata.get("license", "Proprietary") == answers["license"]


@pytest.mark.parametrize("task", validation.CHOICES["task"])
def test_each_task_writes_exactly_these_files(
    default_project: Path, tmp_path: Path, task: str
) -> None:
    expected = set(Path(__file__).with_name("expected_files.txt").read_text().split())
    project = default_project if task == SPEC["task"] else bake(tmp_path, task=task)
    actual = relative(project)
    assert actual - expected == set(), "files nobody expected"
    assert expected - actual == set(), "files missing"


def test_top_level_is_what_users_are_promised(default_project: Path) -> None:
    top = {p.name for p in default_project.iterdir()}
    promised = {".github", "noxfile.py", "src", "Dockerfile", "Dockerfile.train", "k8s", "tests"}
    promised |= {"README.md", "pyproject.toml", ".dockerignore", "uv.lock"}
    assert promised <= top


# What a generated file may not say: the template's proof, tests and benchmarks are its own.
TEMPLATE_HOUSE = re.compile(
    r"template's (own )?(tests?|test tier|suite|benchmarks)|benchmarks/|\bproof[./]|rehears",
    re.IGNORECASE,
)


def test_no_generated_file_mentions_the_templates_own_proof(default_project: Path) -> None:
    mentions = [
        f"{path.relative_to(default_project)}: {match[0]}"
        for path in sorted(default_project.rglob("*"))
        if path.is_file() and path.name != "uv.lock"
        for match in TEMPLATE_HOUSE.finditer(path.read_text(errors="replace"))
    ]
    assert mentions == []


def test_nothing_in_the_template_imports_a_bakes_modules() -> None:
    """The proof drives a bake from outside: its files, commands and images, never its code."""
    own = [*(TEMPLATE / "proof").glob("*.py"), *(TEMPLATE / "benchmarks").glob("*.py")]
    own += (TEMPLATE / "tests").rglob("*.py")
    imports = re.compile(r"^\s*(from|import) (tools|src)\b|import_module\(", re.MULTILINE)
    found = [str(p.relative_to(TEMPLATE)) for p in own if imports.search(p.read_text())]
    assert found == []


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
    mlops = tomllib.loads((project / "pyproject.toml").read_text())["tool"]["mlops"]
    assert mlops["registry"] == "ghcr.io/analytical-engines"


def test_long_answers_still_give_lint_clean_code(tmp_path: Path) -> None:
    long = "a-very-long-project-slug-that-tests-line-lengths-everywhere-x"[
        : validation.MAX_SLUG
    ].strip("-")
    project = bake(
        tmp_path,
        project_name="A Very Long Project Name That Tests Line Lengths Everywhere In The Code",
        project_slug=long,
        image_name=f"some-team/{long}",
        image_registry="registry.some-long-domain.example.com:5443/platform/teams",
        k8s_namespace="a-namespace-as-long-as-kubernetes-allows-" + "x" * 22,
        description="A description long enough to overflow any line it were pasted into, " * 3,
    )
    for command in (["ruff", "check", "."], ["ruff", "format", "--check", "."]):
        result = subprocess.run(command, cwd=project, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


# Printable but hostile in every format an answer lands in: quotes, backslashes, `$`
# (expanded in a Dockerfile LABEL), triple quotes, Markdown, and Jinja's closing braces.
HOSTILE = {
    "project_name": 'Ada\'s "Fraud" \\ Scorer $HOME #1 <b>*x*</b> }} %} """ `x`',
    "description": "He said \"hi\" \\n $HOME ${HOME} `x` [l](u) <script> &amp; | :smile: ''' #",
    "author_name": 'O\'Brien "The \\ Quoter" $USER',
    "author_email": '"o\\b$HOME"@example.com',
}


@pytest.fixture(scope="module")
def hostile_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bake(tmp_path_factory.mktemp("hostile"), **HOSTILE)


def rendered_text(markdown: str) -> str:
    """What a Markdown line shows a reader."""
    rendered = MarkdownIt("commonmark").render(markdown)
    return html.unescape(re.sub(r"<[^>]+>", "", rendered)).strip()


def test_hostile_free_text_parses_everywhere(hostile_project: Path) -> None:
    check_rendered(hostile_project, HOSTILE.values())
    metadata = tomllib.loads((hostile_project / "pyproject.toml").read_text())["project"]
    assert metadata["description"] == HOSTILE["description"]
    author = {"name": HOSTILE["author_name"], "email": HOSTILE["author_email"]}
    assert metadata["authors"] == [author]
    title, _, description = (hostile_project / "README.md").read_text().splitlines()[:3]
    assert rendered_text(title) == HOSTILE["project_name"]
    assert rendered_text(description) == HOSTILE["description"]
    assert f"{HOSTILE['author_name']}\n" in (hostile_project / "LICENSE").read_text()


def test_hostile_free_text_keeps_both_dockerfiles_hadolint_clean(hostile_project: Path) -> None:
    dockerfiles = [str(hostile_project / name) for name in ("Dockerfile", "Dockerfile.train")]
    config = str(hostile_project / ".hadolint.yaml")
    result = subprocess.run(
        ["hadolint", "--config", config, *dockerfiles], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.docker
@pytest.mark.parametrize("label", ["Dockerfile", "Dockerfile.train"])
def test_hostile_labels_reach_the_image_unexpanded(
    hostile_project: Path, docker: str, label: str, tmp_path: Path
) -> None:
    """Docker's own parser reads the rendered LABEL line: `$HOME` stays `$HOME`."""
    (line,) = [
        text.strip().rstrip("\\").strip()
        for text in (hostile_project / label).read_text().splitlines()
        if "org.opencontainers.image.description=" in text
    ]
    (tmp_path / "Dockerfile").write_text(f"FROM python:3.13-slim\nLABEL {line}\n")
    tag = f"answers-label-check:{label.lower().replace('.', '-')}"
    subprocess.run([docker, "build", "-q", "-t", tag, str(tmp_path)], check=True, timeout=300)
    try:
        inspected = subprocess.run(
            [docker, "image", "inspect", "--format", "{{json .Config.Labels}}", tag],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        subprocess.run([docker, "image", "rm", "-f", tag], capture_output=True, check=False)
    labels = json.loads(inspected.stdout)
    suffix = ": model server" if label == "Dockerfile" else ": training job"
    assert labels["org.opencontainers.image.description"] == HOSTILE["project_name"] + suffix


@pytest.mark.e2e
def test_hostile_but_accepted_answers_pass_the_project_sessions(hostile_project: Path) -> None:
    nox(hostile_project, "lint", "typecheck", "tests")


@pytest.mark.e2e
def test_a_regression_bake_passes_its_nox_defaults(tmp_path: Path) -> None:
    project = bake(tmp_path, task="regression")
    result = run(["nox", "--non-interactive"], project)  # no -s: the project's own defaults
    output = result.stdout + result.stderr
    assert "no 'champion' yet: GATE_MIN alone decides" in output
    assert re.search(r"run \w+: rmse=\d+\.\d{4} mae=\d+\.\d{4} r2=0\.\d{4}", output), output[-2000:]
    assert re.search(r"quality gate passed \(r2 >= 0\.3: r2=0\.\d{4}\)", output), output[-2000:]
    assert (project / "build" / "model" / "MLmodel").is_file()


def test_the_next_steps_print_the_name_as_given(tmp_path: Path) -> None:
    result = cookiecutter_cli(tmp_path, f"project_name={HOSTILE['project_name']}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{HOSTILE['project_name']} is ready in ./" in result.stdout


@pytest.mark.delivery
def test_the_longest_names_pass_the_manifest_checks(tmp_path: Path) -> None:
    """Kubernetes validation, policy and YAML lint hold with every name at its bound."""
    slug = "s" * validation.MAX_SLUG
    registry = "registry.example.com:65535/" + "r" * 40
    image = "i" * (validation.MAX_IMAGE_REFERENCE - len(registry) - len("/-train"))
    project = bake(
        tmp_path,
        project_slug=slug,
        k8s_namespace="n" * 63,
        github_owner="o" * 39,
        image_registry=registry,
        image_name=image,
        max_replicas="1000",
        replicas="1000",
    )
    nox(project, "manifests")
    job = (project / "k8s" / "overlays" / "kind" / "train-job.yaml").read_text()
    assert f"name: {slug}-train" in job


def cookiecutter_cli(output: Path, *answers: str) -> subprocess.CompletedProcess[str]:
    """The real `cookiecutter` command, as a user runs it."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "cookiecutter",
            "--no-input",
            "-o",
            str(output),
            str(TEMPLATE),
            *answers,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


INVALID = [
    ({"project_slug": "ML Service"}, "project_slug"),
    ({"project_slug": "9lives"}, "project_slug"),
    ({"project_slug": "../outside"}, "project_slug"),
    ({"project_slug": "s" * (validation.MAX_SLUG + 1)}, "project_slug"),
    ({"package_name": "class"}, "package_name"),
    ({"package_name": "json"}, "package_name"),
    ({"package_name": "numpy"}, "package_name"),
    ({"package_name": "sklearn"}, "package_name"),
    ({"package_name": "yaml"}, "package_name"),
    ({"image_name": "Bad_Image"}, "image_name"),
    ({"image_registry": "https://ghcr.io/x"}, "image_registry"),
    ({"image_registry": "localhost:65536"}, "image_registry"),
    ({"image_registry": "localhost:0"}, "image_registry"),
    ({"author_email": "not-an-email"}, "author_email"),
    ({"replicas": "0"}, "replicas"),
    ({"replicas": "many"}, "replicas"),
    ({"replicas": "١٢"}, "replicas"),
    ({"replicas": "1_0"}, "replicas"),
    ({"replicas": "+3"}, "replicas"),
    ({"replicas": " 3"}, "replicas"),
    ({"max_replicas": "2147483648"}, "max_replicas"),
    ({"replicas": "4", "max_replicas": "3"}, "max_replicas"),
    ({"k8s_namespace": "Prod_NS"}, "k8s_namespace"),
    ({"k8s_namespace": "default"}, "k8s_namespace"),
    ({"k8s_namespace": "kube-system"}, "k8s_namespace"),
    ({"python_version": "3.10"}, "python_version"),
    ({"model": "xgboost"}, "model"),
    ({"license": "GPL-3.0"}, "license"),
    ({"project_name": "{{"}, "project_name"),
    ({"project_name": "{{ 7*7 }}"}, "project_name"),
    ({"description": "{% if x %}"}, "description"),
    ({"author_name": "{# note"}, "author_name"),
    ({"image_name": "{{ cookiecutter.project_slug }}-x"}, "image_name"),
    ({"project_name": "two\nlines"}, "project_name"),
    ({"description": "tab\there"}, "description"),
    ({"author_name": "bell\x07"}, "author_name"),
    # Past cookiecutter.json's check (as `--replay` is): the pre-generation hook still refuses.
    ({"__answers_checked": "", "replicas": "0"}, "replicas"),
]


@pytest.mark.parametrize(("answers", "field"), INVALID, ids=[str(a) for a, _ in INVALID])
def test_bad_answers_stop_with_one_line_and_leave_nothing(
    tmp_path: Path, answers: dict[str, str], field: str
) -> None:
    result = cookiecutter_cli(tmp_path, *(f"{key}={value}" for key, value in answers.items()))
    output = (result.stdout + result.stderr).splitlines()
    assert result.returncode != 0
    assert len(output) == 1, output
    assert output[0].startswith(f"ERROR: {field} "), output
    assert "Traceback" not in result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == [], "a rejected bake left files behind"


def test_bad_answers_are_refused_through_the_python_api_too(tmp_path: Path) -> None:
    with pytest.raises(validation.AnswerRefused, match=r"^ERROR: project_name '\{\{ 7\*7 \}\}'"):
        bake(tmp_path, project_name="{{ 7*7 }}")
    assert list(tmp_path.iterdir()) == []

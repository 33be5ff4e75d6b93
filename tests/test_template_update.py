"""Template updates with cruft: a project made by `cruft create` takes a later template commit.

The template is copied into a temporary git repository, as a fork of it on GitHub would be; the
project is created from one commit and updated to the next by the same steps the generated
template-update workflow runs.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cookiecutter.main import cookiecutter

from noxfile import TEST_REQUIREMENTS
from tests.conftest import DEFAULT_SLUG, bake, git_init, project_env, run
from tests.test_readme import checkout_copy

WORKFLOW = Path(".github/workflows/template-update.yml")
GIT_USER = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
# The later template commit: one file added (with an answer in it), one changed.
ADDED = "{{cookiecutter.project_slug}}/CHANGELOG.md"
ADDED_TEXT = "# {{ cookiecutter.project_name }}: changes\n"
CHANGED = "{{cookiecutter.project_slug}}/noxfile.py"
CHANGED_TEXT = "\n\n# Taken from a later template commit by `cruft update`.\n"  # ruff-formatted


def commit(repo: Path, message: str) -> str:
    run(["git", "add", "-A"], repo)
    run(["git", *GIT_USER, "commit", "-qm", message], repo)
    return run(["git", "rev-parse", "HEAD"], repo).stdout.strip()


def template_repo(destination: Path) -> tuple[Path, str]:
    """This checkout's files committed to a new repository; (its path, the commit)."""
    repo = checkout_copy(destination)
    run(["git", "init", "-q", "-b", "main"], repo)
    return repo, commit(repo, "template")


def cruft(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A cruft command in the project, whatever its exit code."""
    return subprocess.run(
        ["cruft", *args],
        cwd=project,
        env=project_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def cruft_state(project: Path) -> dict[str, Any]:
    state: dict[str, Any] = json.loads((project / ".cruft.json").read_text())
    return state


def workflow(project: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((project / WORKFLOW).read_text())
    return loaded


def run_step(project: Path, name: str, tmp_path: Path) -> tuple[dict[str, str], str]:
    """Run one `run:` step of the template-update workflow as GitHub does: (outputs, stdout)."""
    [step] = [s for s in workflow(project)["jobs"]["update"]["steps"] if s.get("name") == name]
    outputs = tmp_path / f"{name}.out"
    outputs.write_text("")
    env = project_env(GITHUB_OUTPUT=str(outputs))
    shell = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]]
    stdout = run(shell, project, env).stdout
    return dict(line.split("=", 1) for line in outputs.read_text().splitlines()), stdout


@pytest.mark.delivery
def test_update_job_holds_only_what_a_pull_request_needs(tmp_path: Path) -> None:
    spec = workflow(bake(tmp_path))
    assert spec["permissions"] == {}
    assert set(spec[True]) == {"schedule", "workflow_dispatch"}  # YAML 1.1 reads `on:` as True
    assert spec["jobs"]["update"]["permissions"] == {
        "contents": "write",
        "pull-requests": "write",
    }
    env = spec["env"]
    pins = {f"cruft=={env['CRUFT_VERSION']}", f"cookiecutter=={env['COOKIECUTTER_VERSION']}"}
    assert pins <= set(TEST_REQUIREMENTS), "the suite tests other versions than the workflow runs"


@pytest.mark.delivery
def test_a_plain_cookiecutter_bake_skips_with_a_message(tmp_path: Path) -> None:
    project = bake(tmp_path / "bake")
    assert not (project / ".cruft.json").exists()
    outputs, stdout = run_step(project, "Find .cruft.json", tmp_path)
    assert outputs == {"linked": "false"}
    assert "::notice::Skipped: no .cruft.json" in stdout
    assert "Updating your project" in stdout


def created_project(tmp_path: Path) -> tuple[Path, Path, str]:
    """`cruft create` from a commit of a template repository, committed as a user does:
    (template repository, project, the template commit)."""
    template, first = template_repo(tmp_path / "template")
    run(["cruft", "create", "--no-input", "--output-dir", str(tmp_path), str(template)], tmp_path)
    project = tmp_path / DEFAULT_SLUG
    assert cruft_state(project)["commit"] == first
    git_init(project)  # what the post-generation message tells the user to do
    return template, project, first


@pytest.mark.e2e
def test_cruft_project_takes_a_template_update_and_still_passes_nox(tmp_path: Path) -> None:
    template, project, _ = created_project(tmp_path)
    assert run_step(project, "Find .cruft.json", tmp_path)[0] == {"linked": "true"}
    assert run_step(project, "cruft check", tmp_path)[0] == {"behind": "false"}

    (template / ADDED).write_text(ADDED_TEXT)
    with (template / CHANGED).open("a") as noxfile:
        noxfile.write(CHANGED_TEXT)
    second = commit(template, "one file added, one changed")

    check = cruft(project, "check")
    assert check.returncode != 0, check.stdout
    assert "out of date" in check.stdout
    assert run_step(project, "cruft check", tmp_path)[0] == {"behind": "true"}

    update, _ = run_step(project, "cruft update", tmp_path)
    assert update == {"commit": second}
    assert (project / "CHANGELOG.md").read_text() == "# ML Service: changes\n"
    assert (project / "noxfile.py").read_text().endswith(CHANGED_TEXT)
    assert cruft_state(project)["commit"] == second
    changed = run(["git", "status", "--porcelain"], project).stdout.splitlines()
    assert sorted(line[3:] for line in changed) == [".cruft.json", "CHANGELOG.md", "noxfile.py"]
    assert not list(project.rglob("*.rej")), "every hunk applies to an unmodified project"
    assert cruft(project, "check").returncode == 0

    commit(project, "Update from the template")
    # The updated noxfile still loads and the project lints, type-checks and trains. Its test
    # suite is left to test_readme, which runs it on these same files (a CI-time budget).
    run(["nox", "--non-interactive", "-s", "lint", "typecheck", "train"], project, timeout=2400)


@pytest.mark.e2e
def test_an_update_renders_with_the_newer_commits_filters(tmp_path: Path) -> None:
    """cruft renders both commits in one process: a filter added later must still be found."""
    template, project, _ = created_project(tmp_path)
    formats = template / "hooks" / "formats.py"
    formats.write_text(formats.read_text() + '\nFILTERS["shout"] = str.upper\n')
    (template / ADDED).write_text("{{ cookiecutter.project_name | shout }}\n")
    commit(template, "a new filter, used")
    update = cruft(project, "update", "--skip-apply-ask")
    assert update.returncode == 0, update.stdout + update.stderr
    assert (project / "CHANGELOG.md").read_text() == "ML SERVICE\n"


@pytest.mark.e2e
def test_a_plain_cookiecutter_bake_linked_once_takes_updates(tmp_path: Path) -> None:
    """README: link a plain bake to the commit it came from, then `cruft update` works."""
    template, first = template_repo(tmp_path / "template")
    project = Path(cookiecutter(str(template), no_input=True, output_dir=str(tmp_path)))
    git_init(project)
    link = ["link", "--no-input", "--checkout", first, str(template)]
    assert cruft(project, *link).returncode == 0
    assert cruft_state(project)["commit"] == first
    commit(project, "Link to the template")
    (template / ADDED).write_text(ADDED_TEXT)
    commit(template, "one file added")
    assert cruft(project, "check").returncode != 0
    update = cruft(project, "update", "--skip-apply-ask")
    assert update.returncode == 0, update.stdout + update.stderr
    assert (project / "CHANGELOG.md").read_text() == "# ML Service: changes\n"

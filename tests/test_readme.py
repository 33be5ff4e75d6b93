"""README command 1, run as written: bake → nox (lint, typecheck, tests, train) → build → smoke."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from noxfile import TEST_REQUIREMENTS
from tests.conftest import TEMPLATE, project_env, run

pytestmark = pytest.mark.e2e


def readme_commands() -> list[str]:
    """The two commands in the README's first console block."""
    text = (TEMPLATE / "README.md").read_text()
    block = text.split("```console\n", 1)[1].split("```", 1)[0]
    return block.strip().splitlines()


# Each command starts in a fresh virtualenv: a system Python may refuse `pip install` (PEP 668).
VENV = "python3 -m venv .venv && . .venv/bin/activate && "


def split_install(command: str) -> tuple[list[str], str]:
    """(`pip install` arguments, the rest of the command)."""
    assert command.startswith(VENV), command
    install, rest = command.removeprefix(VENV).split(" && ", 1)
    words = shlex.split(install)
    assert words[:2] == ["pip", "install"], install
    return words[2:], rest


def test_readme_starts_with_exactly_two_commands() -> None:
    commands = readme_commands()
    assert len(commands) == 2
    assert commands[1].endswith("&& nox")


def test_readme_pins_are_the_ones_the_suite_uses() -> None:
    for command in readme_commands():
        pins, _ = split_install(command)
        assert set(pins) <= set(TEST_REQUIREMENTS), pins


def checkout_copy(destination: Path) -> Path:
    """The files a clean checkout has: what git tracks, plus what is staged or new."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=TEMPLATE,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in listed:
        source = TEMPLATE / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def test_readme_command_one_runs_the_main_job_end_to_end(tmp_path: Path, docker: str) -> None:
    # The session's venv already has the README's pins (checked above); run the rest as written.
    _, rest = split_install(readme_commands()[0])
    checkout = checkout_copy(tmp_path / "checkout")
    run(["bash", "-euo", "pipefail", "-c", rest], checkout, project_env(), timeout=2400)

    project = checkout / ".bakes" / "ml-service"
    assert (project / "build" / "model" / "MLmodel").is_file()
    champion = run(
        [
            str(project / ".nox" / "train" / "bin" / "python"),
            "-c",
            "from mlflow import MlflowClient;"
            "v = MlflowClient().get_model_version_by_alias('ml-service', 'champion');"
            "print(v.version, v.run_id)",
        ],
        project,
        project_env(MLFLOW_TRACKING_URI="sqlite:///mlflow.db"),
    ).stdout.split()
    version, run_id = champion
    assert version == "1"
    assert len(run_id) == 32

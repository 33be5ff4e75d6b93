"""The generated workflows' day-two flow (issue 17): training against the team's MLflow registry
in train.yml, delivery shipping the registry's champion, the MLflow secrets only where they are
used, and the steps' own shell run here with the commands the workflows run."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import bake, project_env, run

pytestmark = pytest.mark.delivery

MLFLOW_SECRETS = [
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
]
TRAIN_STEP = "Train (the alias moves only past the gate)"
FETCH_STEP = "Fetch the registry's champion"
NOTICE = "::notice::no MLFLOW_TRACKING_URI secret or variable: this run trains into a throwaway"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A default bake of its own: the training step writes build/ and mlflow.db into it."""
    return bake(tmp_path_factory.mktemp("flow"))


def workflow(project: Path, name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((project / ".github" / "workflows" / name).read_text())
    return loaded


def step(project: Path, name: str, job: str, title: str) -> dict[str, Any]:
    [found] = [s for s in workflow(project, name)["jobs"][job]["steps"] if s.get("name") == title]
    return found


def test_triggers_and_the_call_between_the_workflows(project: Path) -> None:
    """train.yml runs by hand, weekly and when called; delivery calls it with the four MLflow
    secrets by name (never `inherit`) and builds from the model job's artifact."""
    train = workflow(project, "train.yml")
    triggers = train[True]  # PyYAML reads the key `on` as a boolean
    assert set(triggers) == {"workflow_dispatch", "schedule", "workflow_call"}
    assert list(triggers["workflow_call"]["secrets"]) == MLFLOW_SECRETS
    assert train["permissions"] == {}
    assert train["jobs"]["train"]["permissions"] == {"contents": "read"}
    delivery = workflow(project, "delivery.yml")
    jobs = delivery["jobs"]
    call = jobs["train"]
    assert call["uses"] == "./.github/workflows/train.yml"
    assert call["secrets"] == {name: f"${{{{ secrets.{name} }}}}" for name in MLFLOW_SECRETS}
    assert call["if"] == "needs.changes.outputs.train == 'true'"
    assert jobs["model"]["needs"] == ["changes", "train"]
    assert "needs.train.result != 'failure'" in jobs["model"]["if"]
    assert jobs["build-and-scan"]["needs"] == "model"
    # Training data comes from repository variables, into the training step only.
    env = step(project, "train.yml", "train", TRAIN_STEP)["env"]
    assert env["DATA_PATH"] == "${{ vars.DATA_PATH }}"
    assert env["TARGET_COLUMN"] == "${{ vars.TARGET_COLUMN }}"
    uri = "${{ secrets.MLFLOW_TRACKING_URI || vars.MLFLOW_TRACKING_URI }}"
    assert env["MLFLOW_TRACKING_URI"] == uri
    assert step(project, "delivery.yml", "model", FETCH_STEP)["env"]["MLFLOW_TRACKING_URI"] == uri


def test_mlflow_secrets_reach_only_the_steps_that_use_them(project: Path) -> None:
    """Through a step's env only, and only in the training step, the champion's fetch, and the
    decision, which sees whether a URI is set and never the URI itself."""
    holders = set()
    for path in sorted((project / ".github" / "workflows").glob("*.yml")):
        jobs = workflow(project, path.name)["jobs"]
        for job_name, job in jobs.items():
            outside_steps = {k: v for k, v in job.items() if k not in {"steps", "secrets"}}
            assert "secrets.MLFLOW" not in str(outside_steps), (path.name, job_name)
            for each in job.get("steps", []):
                assert "secrets.MLFLOW" not in each.get("run", ""), each["name"]
                if "secrets.MLFLOW" in str(each):
                    holders.add((path.name, job_name, each["name"]))
    assert holders == {
        ("train.yml", "train", TRAIN_STEP),
        ("delivery.yml", "model", FETCH_STEP),
        ("delivery.yml", "changes", "Decide"),
    }
    decide = step(project, "delivery.yml", "changes", "Decide")["env"]
    assert decide["REGISTRY_SET"].endswith("!= '' }}")
    assert [k for k, v in decide.items() if "secrets." in v] == ["REGISTRY_SET"]


def run_step(
    project: Path, script: str, github_output: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    """A `run:` step as the runner runs it (bash -eo pipefail), in `project`."""
    github_output.write_text("")
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=project,
        env=project_env(GITHUB_OUTPUT=str(github_output), **env),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def outputs(github_output: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in github_output.read_text().splitlines())


# What GitHub passes for secrets and variables nobody set: empty strings.
UNSET = dict.fromkeys([*MLFLOW_SECRETS, "DATA_PATH", "TARGET_COLUMN"], "")


def train_step(project: Path) -> tuple[str, dict[str, str]]:
    """The training step's script, and the workflow's own env it runs under."""
    return step(project, "train.yml", "train", TRAIN_STEP)["run"], workflow(project, "train.yml")[
        "env"
    ]


def test_the_training_step_without_a_registry_says_so_once(project: Path, tmp_path: Path) -> None:
    """Nothing configured: one notice, and today's training (bundled data, local store)."""
    script, env = train_step(project)
    result = run_step(project, script, tmp_path / "output", **(env | UNSET))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    notices = [line for line in result.stdout.splitlines() if line.startswith("::notice::")]
    assert len(notices) == 1, output[-4000:]
    assert notices[0].startswith(NOTICE)
    print(f"\n{notices[0]}")
    assert notices[0] in (project / "docs" / "deploy.md").read_text()  # the doc shows it whole
    assert outputs(tmp_path / "output") == {"exported": "true"}
    assert (project / "build" / "model" / "MLmodel").is_file()


def test_the_training_step_keeps_the_champion_that_beats_it(project: Path, tmp_path: Path) -> None:
    """A store that outlives the run (a file here, the team's server in CI): the first run takes
    the alias; a worse one is refused with a warning, and the step stays green."""
    store = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'shared.db'}"}
    script, env = train_step(project)
    first = run_step(project, script, tmp_path / "first", **(env | UNSET | store))
    assert first.returncode == 0, (first.stdout + first.stderr)[-4000:]
    assert "::notice::" not in first.stdout
    assert outputs(tmp_path / "first") == {"exported": "true"}
    worse = env | UNSET | store | {"MODEL_TYPE": "random_forest"}  # 0.9932 < 0.9954 on the holdout
    second = run_step(project, script, tmp_path / "second", **worse)
    output = second.stdout + second.stderr
    assert second.returncode == 0, output[-4000:]
    assert "beaten by the champion" in output
    [warning] = [line for line in second.stdout.splitlines() if line.startswith("::warning::")]
    assert "the alias stays on the champion" in warning
    assert outputs(tmp_path / "second") == {"exported": "false"}


def commit(repo: Path, path: str, text: str) -> str:
    """Write `path` in `repo`, commit it, return the commit."""
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text(text)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    run([*git, "add", "-A"], repo)
    run([*git, "commit", "-qm", path], repo)
    return run(["git", "rev-parse", "HEAD"], repo).stdout.strip()


@pytest.mark.parametrize(
    ("registry", "event", "ref", "changed", "train"),
    [
        (False, "push", "refs/heads/main", "README.md", "true"),  # today's behaviour
        (True, "push", "refs/heads/main", "README.md", "false"),  # serving-only change
        (True, "push", "refs/heads/main", "src/pkg/serve/app.py", "false"),
        (True, "push", "refs/heads/main", "src/pkg/train.py", "true"),
        (True, "push", "refs/heads/main", "data/churn.csv", "true"),
        (True, "push", "refs/heads/main", "uv.lock", "true"),
        (True, "push", "refs/tags/v1.0.0", "src/pkg/train.py", "false"),  # a release ships
        (True, "workflow_dispatch", "refs/heads/main", "src/pkg/train.py", "false"),
        (True, "push", "refs/heads/main", None, "true"),  # the base is unknown: train
    ],
)
def test_delivery_trains_only_when_the_model_can_change(
    project: Path,
    tmp_path: Path,
    registry: bool,
    event: str,
    ref: str,
    changed: str | None,
    train: str,
) -> None:
    """The decide step's own shell on a real git history."""
    repo = tmp_path / "repo"
    repo.mkdir()
    run(["git", "init", "-q", "-b", "main"], repo)
    before = commit(repo, "src/pkg/train.py", "v1\n")
    commit(repo, changed or "README.md", "v2\n")
    script = step(project, "delivery.yml", "changes", "Decide")["run"]
    env = {
        "REGISTRY_SET": str(registry).lower(),
        "EVENT": event,
        "GITHUB_REF": ref,
        "BEFORE": before if changed else "0" * 40,
    }
    result = run_step(repo, script, tmp_path / "output", **env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert outputs(tmp_path / "output") == {"registry": str(registry).lower(), "train": train}

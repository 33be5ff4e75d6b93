"""proof/act.py and proof/act_log.py without act: pins to trees, the run's name, the log read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from proof.act import KIND_ACTION, MissingTree, local_repositories, renamed_copy
from proof.act_log import Outcome

SHA = "3d3c42e5aac5ba805825da76410c181273ba90b1"
NESTED = "59d89421af93a897026c735860bf21b6eb4f7b26"


def action(folder: Path, *uses: str) -> None:
    """An action.yml in `folder`: composite with `uses` steps, or a node action without."""
    folder.mkdir(parents=True)
    runs = {"using": "composite", "steps": [{"uses": u} for u in uses]} if uses else {}
    (folder / "action.yml").write_text(yaml.safe_dump({"name": folder.name, "runs": runs}))


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    trees, stand_ins = tmp_path / "actions", tmp_path / "stand-ins"
    action(trees / "actions" / "checkout")
    action(trees / "actions" / "attest")
    action(trees / "actions" / "attest-build-provenance", f"actions/attest@{NESTED}")
    action(trees / "github" / "codeql-action" / "upload-sarif")  # the real one, never used
    action(stand_ins / "codeql-action" / "upload-sarif")
    action(stand_ins / "kind-guard")
    return trees, stand_ins


def workflow(*uses: str) -> dict[str, object]:
    return {"jobs": {"one": {"steps": [{"uses": u} for u in uses] + [{"run": "true"}]}}}


def test_pins_map_to_trees_by_repository_with_nested_pins_and_stand_ins(
    folders: tuple[Path, Path],
) -> None:
    trees, stand_ins = folders
    provenance = trees / "actions" / "attest-build-provenance"
    document = workflow(
        f"actions/checkout@{SHA}",
        f"actions/attest-build-provenance@{SHA}",
        f"github/codeql-action/upload-sarif@{SHA}",
        f"{KIND_ACTION}@{SHA}",
        "./local-action",
    )
    assert local_repositories(document, trees, stand_ins) == sorted(
        [
            f"actions/checkout@{SHA}={trees / 'actions' / 'checkout'}",
            f"actions/attest-build-provenance@{SHA}={provenance}",
            f"actions/attest@{NESTED}={trees / 'actions' / 'attest'}",
            f"github/codeql-action@{SHA}={stand_ins / 'codeql-action'}",
            f"{KIND_ACTION}@{SHA}={stand_ins / 'kind-guard'}",
        ]
    )


def test_a_pin_without_a_tree_fails_in_one_line_naming_it(folders: tuple[Path, Path]) -> None:
    trees, stand_ins = folders
    with pytest.raises(MissingTree) as raised:
        local_repositories(workflow(f"octo/unknown-action@{SHA}"), trees, stand_ins)
    message = str(raised.value)
    assert f"octo/unknown-action@{SHA}" in message
    assert "\n" not in message


def test_the_run_copy_differs_from_the_workflow_in_its_name_line_only(tmp_path: Path) -> None:
    source = tmp_path / "ci.yml"
    source.write_text("name: CI\non: push\njobs:\n  a:\n    name: CI\n    runs-on: x\n")
    copy, name = renamed_copy(source, "act-1a2b3c4d", tmp_path / "copy.yml")
    assert name == "CI act-1a2b3c4d"
    before, after = source.read_text().splitlines(), copy.read_text().splitlines()
    assert [(b, a) for b, a in zip(before, after, strict=True) if b != a] == [
        ("name: CI", "name: CI act-1a2b3c4d")
    ]


def entry(job: str, **fields: object) -> str:
    return json.dumps({"job": f"CI act-1a2b3c4d/{job}     ", "msg": "m", **fields})


def test_the_log_gives_each_job_its_steps_and_result(tmp_path: Path) -> None:
    log = tmp_path / "ci.jsonl"
    lines = [
        entry("lint-1", step="Set up job", stepResult="success"),
        entry("lint-1", stage="Main", step="Check out", stepResult="success"),
        entry("lint-1", jobResult="success"),
        entry("images", stage="Main", step="Check out", stepResult="success"),
        entry("images", stage="Main", step="Build", stepResult="failure"),
        entry("images", stage="Main", step="Scan", stepResult="skipped"),
        entry("images", jobResult="failure"),
        "time=... level=warning msg=not json",
    ]
    log.write_text("\n".join(lines))
    outcome = Outcome.read(log, 1)
    assert set(outcome.jobs) == {"lint-1", "images"}
    assert outcome.jobs["lint-1"].result == "success"
    assert outcome.jobs["images"].first_failure() == "Main Build"
    assert outcome.jobs["images"].ran("Check out") == "success"
    assert outcome.jobs["images"].ran("Deploy") is None
    assert not outcome.ok
    assert "images: failure at Main Build" in outcome.summary()

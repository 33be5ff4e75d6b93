"""Each rule passes on the rendered kind overlay and on delivery.yml, and fails on a copy that
breaks it, with one line naming what and where."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools import manifest_rules
from tools.manifest_rules import SERVING_RULES, Doc, check_delivery_order, check_rendered
from tools.project import ROOT, names

WORKFLOW = ROOT / ".github" / "workflows" / "delivery.yml"


def serving(docs: list[Doc]) -> Doc:
    [deployment] = [
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == names().deployment
    ]
    return deployment


def pod(docs: list[Doc]) -> Doc:
    found: Doc = serving(docs)["spec"]["template"]["spec"]
    return found


def settings(docs: list[Doc]) -> dict[str, str]:
    # The training settings' ConfigMap may be empty (no `data`).
    maps: list[dict[str, str]] = [d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"]
    [config] = [data for data in maps if "DRAIN_SECONDS" in data]
    return config


# Each rule, and ways to break it; the problem each break must produce.
BREAKS: list[tuple[str, Callable[[list[Doc]], Any], str]] = [
    (
        "probes hit the server's routes",
        lambda docs: pod(docs)["containers"][0]["readinessProbe"]["httpGet"].update(path="/"),
        "readinessProbe path is '/', want '/readyz'",
    ),
    (
        "the drain fits the grace period",
        lambda docs: settings(docs).update(DRAIN_SECONDS="40"),
        "terminationGracePeriodSeconds 30 must exceed preStop 5s + DRAIN_SECONDS 40s",
    ),
    (
        "the drain fits the grace period",
        lambda docs: pod(docs)["containers"][0].pop("lifecycle"),
        "preStop sleep is 0s, want 1..30s",
    ),
    (
        "the autoscaler owns the replicas",
        lambda docs: serving(docs)["spec"].update(replicas=3),
        "spec.replicas=3 fights the autoscaler",
    ),
    (
        "the autoscaler owns the replicas",
        lambda docs: serving(docs)["spec"]["strategy"]["rollingUpdate"].pop("maxUnavailable"),
        "want RollingUpdate with maxUnavailable 0",
    ),
    (
        "the autoscaler owns the replicas",
        lambda docs: docs.remove(next(d for d in docs if d["kind"] == "HorizontalPodAutoscaler")),
        "0 HorizontalPodAutoscalers target it, want 1",
    ),
]


def test_every_rule_has_a_break() -> None:
    assert {rule for rule, _, _ in BREAKS} == set(SERVING_RULES)


@pytest.mark.parametrize(("rule", "breaks", "wanted"), BREAKS)
def test_rule_passes_on_the_kind_overlay_and_fails_on_its_break(
    rule: str, breaks: Callable[[list[Doc]], Any], wanted: str, kind_overlay: list[Doc]
) -> None:
    check = SERVING_RULES[rule]
    assert check(serving(kind_overlay), kind_overlay) == []
    broken = copy.deepcopy(kind_overlay)
    breaks(broken)
    [problem] = check(serving(broken), broken)
    assert wanted in problem


def test_an_overlay_without_the_serving_deployment_fails_once(kind_overlay: list[Doc]) -> None:
    others = [d for d in kind_overlay if d["kind"] != "Deployment"]
    assert check_rendered(others) == [f"Deployment/{names().deployment}: found 0, want exactly 1"]


def delivery() -> Doc:
    workflow: Doc = yaml.safe_load(WORKFLOW.read_text())
    return workflow


def publish_waits_for_train(jobs: Doc) -> None:
    jobs["publish"]["needs"] = "train"


def build_pushes(jobs: Doc) -> None:
    [build] = [s for s in jobs["build-and-scan"]["steps"] if "build-push" in s.get("uses", "")]
    build["with"]["push"] = True


def train_may_write_packages(jobs: Doc) -> None:
    jobs["train"]["permissions"]["packages"] = "write"


def gate_never_fails(jobs: Doc) -> None:
    for step in jobs["build-and-scan"]["steps"]:
        if "trivy-action" in step.get("uses", ""):
            step["with"]["exit-code"] = "0"


@pytest.mark.parametrize(
    ("breaks", "wanted"),
    [
        (publish_waits_for_train, "job publish: pushes, signs or attests without waiting"),
        (build_pushes, "job build-and-scan: pushes, signs or attests without waiting"),
        (train_may_write_packages, "job train: runs third-party code and holds ['packages']"),
        (gate_never_fails, "delivery.yml: no job runs a trivy gate"),
    ],
)
def test_delivery_rule_passes_on_delivery_yml_and_fails_on_a_push_before_the_gate(
    breaks: Callable[[Doc], None], wanted: str
) -> None:
    assert check_delivery_order(delivery()) == []
    workflow = delivery()
    breaks(workflow["jobs"])
    assert any(wanted in problem for problem in check_delivery_order(workflow))


def test_the_command_reports_each_overlay_and_the_workflow(
    kind_overlay: list[Doc], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(yaml.safe_dump_all(kind_overlay))
    broken = copy.deepcopy(kind_overlay)
    serving(broken)["spec"]["replicas"] = 3
    bad.write_text(yaml.safe_dump_all(broken))
    assert manifest_rules.main([str(good)]) == 0
    out = capsys.readouterr().out
    assert f"ok: {good}: probes hit the server's routes" in out
    assert "ok: delivery.yml pushes only after the scan gate" in out
    assert manifest_rules.main([str(bad)]) == 1
    assert capsys.readouterr().err == (
        f"FAIL Deployment/{names().deployment}: spec.replicas=3 fights the autoscaler\n"
    )

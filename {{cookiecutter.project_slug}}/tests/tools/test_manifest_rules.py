"""Each manifest rule passes on the rendered kind overlay and fails on a copy that breaks it."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools import manifest_rules
from tools.manifest_rules import PROJECT_RULES, RENDERED_RULES, Doc, check_delivery_order
from tools.project import ROOT, names

Break = Callable[[list[Doc]], None]


def serving(docs: list[Doc]) -> Doc:
    [deployment] = [
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == names().deployment
    ]
    return deployment


def container(docs: list[Doc]) -> Doc:
    found: Doc = serving(docs)["spec"]["template"]["spec"]["containers"][0]
    return found


def drop(docs: list[Doc], kind: str) -> None:
    docs[:] = [d for d in docs if d["kind"] != kind]


def set_path(doc: Doc, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        doc = doc[key]
    doc[last] = value


SERVING = "spec.template.spec"
BREAKS: dict[str, Break] = {
    "image pins": lambda docs: container(docs).update(image="x:latest"),
    "pod labels": lambda docs: serving(docs)["spec"]["template"]["metadata"]["labels"].pop(
        manifest_rules.PART_OF
    ),
    "namespace": lambda docs: set_path(serving(docs), "metadata.namespace", "default"),
    "one serving Deployment": lambda docs: docs.append(copy.deepcopy(serving(docs))),
    "rollout": lambda docs: set_path(serving(docs), "spec.replicas", 3),
    "probes": lambda docs: container(docs).pop("readinessProbe"),
    "shutdown": lambda docs: set_path(serving(docs), f"{SERVING}.terminationGracePeriodSeconds", 1),
    "spread": lambda docs: serving(docs)["spec"]["template"]["spec"].pop(
        "topologySpreadConstraints"
    ),
    "resources": lambda docs: container(docs)["resources"].pop("limits"),
    "disruption budget": lambda docs: drop(docs, "PodDisruptionBudget"),
    "autoscaler": lambda docs: drop(docs, "HorizontalPodAutoscaler"),
    "network policy": lambda docs: drop(docs, "NetworkPolicy"),
    "pod security": lambda docs: next(d for d in docs if d["kind"] == "Namespace")["metadata"][
        "labels"
    ].update({manifest_rules.ENFORCE_VERSION: "latest"}),
}


def test_every_rule_has_a_break() -> None:
    assert set(BREAKS) == set(RENDERED_RULES)


@pytest.mark.parametrize("rule", list(RENDERED_RULES))
def test_rule_passes_on_the_kind_overlay_and_fails_on_its_break(
    rule: str, kind_overlay: list[Doc]
) -> None:
    check = RENDERED_RULES[rule]
    assert check(kind_overlay) == []
    broken = copy.deepcopy(kind_overlay)
    BREAKS[rule](broken)
    [problem] = check(broken)
    assert problem  # one line naming what and where


def test_project_rules_pass_on_the_project() -> None:
    for what, rule in PROJECT_RULES.items():
        assert rule() == [], what


def test_names_rule_catches_a_name_set_in_one_place_only(monkeypatch: pytest.MonkeyPatch) -> None:
    moved = replace(names(), namespace="elsewhere")
    monkeypatch.setattr(manifest_rules, "names", lambda: moved)
    [problem] = manifest_rules.check_names_agree()
    assert problem.startswith("namespace differs: [tool.mlops] namespace='elsewhere'")


def test_kubectl_rule_catches_another_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manifest_rules, "workflow_env", lambda: {"KUBECTL_VERSION": "v1.0.0"})
    [problem] = manifest_rules.check_kubectl_version()
    assert "KUBECTL_VERSION is 'v1.0.0'" in problem


def test_delivery_rule_catches_a_push_before_the_gate() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "delivery.yml").read_text())
    workflow["jobs"]["publish"]["needs"] = "train"
    problems = check_delivery_order(workflow)
    assert any(p.startswith("delivery.yml job publish: pushes") for p in problems)


def test_the_command_reports_each_overlay_and_the_project(
    kind_overlay: list[Doc], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(yaml.safe_dump_all(kind_overlay))
    broken = copy.deepcopy(kind_overlay)
    BREAKS["rollout"](broken)
    bad.write_text(yaml.safe_dump_all(broken))
    assert manifest_rules.main(["rendered", str(good)]) == 0
    assert f"ok: {good} serving rules" in capsys.readouterr().out
    assert manifest_rules.main(["rendered", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"FAIL Deployment/{names().deployment}: ")
    assert "spec.replicas" in err
    assert manifest_rules.run_rules([], [str(good)]) == 0
    assert manifest_rules.main(["project"]) == 0
    assert manifest_rules.main(["kubernetes-version"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == manifest_rules.kubernetes_version()
    assert manifest_rules.main([]) == 2

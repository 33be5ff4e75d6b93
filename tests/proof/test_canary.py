"""The canary flow's own rules: the failures a canary's share explains, the gate's one line,
and the bake's rendered canary as the rehearsal plans it (tests/test_rehearsal.py plays it)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from proof.canary import allowed_failures, canary_workload, decision
from proof.pod_spec import Unsupported, plan, render
from proof.rehearsal import Failed, selects
from tests.conftest import DEFAULT_SLUG, bake
from tests.proof.test_pod_spec import kubectl  # noqa: F401 - the fixture


def test_failures_within_the_canary_share_pass_and_beyond_it_fail() -> None:
    # 600 requests, 1 pod of 6 on the canary: 100 by round robin, 12 for readiness lapses.
    assert allowed_failures(600, 1 / 6) == 112
    assert allowed_failures(0, 1 / 6) == 0
    # A canary that failed every request of its share stays within it; the stable's failing
    # too (half the requests) does not.
    assert 100 <= allowed_failures(600, 1 / 6) < 300


def test_the_gate_line_must_match_its_exit_code() -> None:
    assert decision(0, "promote: 0 errors\n", "") == "promote: 0 errors"
    assert decision(1, "roll back: 12 non-finite\n", "") == "roll back: 12 non-finite"
    with pytest.raises(Failed, match="exited 0: roll back: x"):
        decision(0, "roll back: x\n", "")
    with pytest.raises(Failed, match="exited 2: no answer from http://pod:8000"):
        decision(2, "", "no answer from http://pod:8000\n")


def test_the_bakes_canary_is_the_stable_pod_on_a_new_image_behind_the_same_service(
    tmp_path: Path,
    kubectl: None,  # noqa: F811 - the fixture
) -> None:
    project = bake(tmp_path)
    docs = render(project / "k8s" / "overlays" / "kind")
    [stable_doc] = [
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == DEFAULT_SLUG
    ]
    rendered = subprocess.run(
        ["python3", "-m", "tools.canary", "render", "--image", "ml-service:sha-new"],
        input=json.dumps(stable_doc),
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    )
    canary_doc = json.loads(rendered.stdout)
    canary = canary_workload(docs, canary_doc)
    the_plan = plan(docs)
    [stable] = [w for w in the_plan.workloads if w.name == DEFAULT_SLUG]
    [service] = [s for s in the_plan.services if s.name == DEFAULT_SLUG]
    assert canary.title == f"Deployment/{DEFAULT_SLUG}-canary"
    assert canary.labels == {**stable.labels, "track": "canary"}
    assert selects(service, canary)
    assert selects(service, stable)
    assert (canary.replicas, canary.container.image) == (1, "ml-service:sha-new")
    # Limits, probes, security, volumes and env: exactly the stable pod's.
    assert replace(canary.container, image=stable.container.image) == stable.container
    # A field the rehearsal does not reproduce in the canary fails, as anywhere else.
    canary_doc["spec"]["template"]["spec"]["nodeSelector"] = {"disk": "ssd"}
    with pytest.raises(Unsupported, match="nodeSelector"):
        canary_workload(docs, canary_doc)

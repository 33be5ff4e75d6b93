"""Delivery checks of baked projects: manifests render and pass `nox -s manifests`, answers flow
into the rendered objects and workflows, and GitHub's `${{ }}` survives cookiecutter."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import CUSTOM_ANSWERS, TEMPLATE, bake, nox, run

pytestmark = pytest.mark.delivery


@pytest.fixture(scope="module")
def custom_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bake(tmp_path_factory.mktemp("custom"), **CUSTOM_ANSWERS)


def render(project: Path, overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, (
        "kubectl is needed to render the overlays (https://kubernetes.io/docs/tasks/tools/)"
    )
    out = run([kubectl, "kustomize", f"k8s/overlays/{overlay}"], project).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def images(docs: list[dict[str, Any]]) -> set[str]:
    return {
        c["image"]
        for d in docs
        if d["kind"] in {"Deployment", "Job"}
        for c in d["spec"]["template"]["spec"]["containers"]
    }


def test_manifests_session_passes_on_custom_answers(custom_project: Path) -> None:
    output = nox(custom_project, "manifests")
    assert "ok: image name, registry and kind node image agree" in output
    assert "Failed checks: 0" in output


def test_answers_flow_into_the_rendered_objects(custom_project: Path) -> None:
    kind, production = render(custom_project, "kind"), render(custom_project, "production")
    slug = "fraud-scorer"
    for docs in (kind, production):
        namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"}
        assert namespaces == {"risk-prod"}
        assert one(docs, "Namespace", "risk-prod")
    hpa = one(kind, "HorizontalPodAutoscaler", slug)["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 7)
    prod_hpa = one(production, "HorizontalPodAutoscaler", slug)["spec"]
    assert prod_hpa["minReplicas"] >= 3
    assert prod_hpa["maxReplicas"] > 7
    assert images(kind) == {"fraud-api:dev", "fraud-api-train:dev"}
    [prod_image] = images(production)
    assert re.fullmatch(r"registry\.example\.com/risk/fraud-api@sha256:[0-9a-f]{64}", prod_image)
    deployment = one(kind, "Deployment", slug)["spec"]
    assert "replicas" not in deployment
    assert deployment["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_workflows_render_with_github_expressions_intact(custom_project: Path) -> None:
    for path in sorted((custom_project / ".github" / "workflows").glob("*.yml")):
        text = path.read_text()
        assert "${{" in text, path
        assert "{%" not in text, path
        assert "{{ cookiecutter" not in text, path
        workflow = yaml.safe_load(text)
        assert workflow["permissions"] == {}, path
        for job in workflow["jobs"].values():
            assert "timeout-minutes" in job, path
            for step in job["steps"]:
                if "uses" in step:
                    assert re.search(r"@[0-9a-f]{40}$", step["uses"]), step["uses"]
    env = yaml.safe_load((custom_project / ".github/workflows/delivery.yml").read_text())["env"]
    assert env["IMAGE_NAME"] == "fraud-api"
    assert env["REGISTRY"] == "registry.example.com/risk"
    assert env["NAMESPACE"] == "risk-prod"
    # metadata-action's semver patterns are GitHub-side templates, not Jinja.
    assert "pattern={{version}}" in (custom_project / ".github/workflows/delivery.yml").read_text()


def test_checks_catch_a_broken_rollout(default_project: Path) -> None:
    """The project's own rules fail on a Deployment that may drop pods during a rollout."""
    deployment = default_project / "k8s" / "base" / "deployment.yaml"
    original = deployment.read_text()
    broken = default_project / "build" / "broken.yaml"
    broken.parent.mkdir(parents=True, exist_ok=True)
    try:
        deployment.write_text(original.replace("maxUnavailable: 0", "maxUnavailable: 1"))
        broken.write_text(yaml.safe_dump_all(render(default_project, "kind")))
    finally:
        deployment.write_text(original)
    result = subprocess.run(
        [sys.executable, "k8s/checks.py", "rendered", str(broken)],
        cwd=default_project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "maxUnavailable 0" in result.stderr


def test_cluster_tool_names_a_missing_kind(default_project: Path, tmp_path: Path) -> None:
    """Without kind on PATH, deploy says how to install it in one line, no traceback."""
    result = subprocess.run(
        [sys.executable, "k8s/cluster.py", "deploy", "--image", "ml-service=ml-service:dev"],
        cwd=default_project,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": str(tmp_path)},
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: install kind:")
    assert "Traceback" not in result.stderr


def test_template_ci_runs_every_root_session() -> None:
    """The template repository's own workflow runs the sessions `nox` runs here."""
    workflow = yaml.safe_load((TEMPLATE / ".github" / "workflows" / "ci.yml").read_text())
    [job] = workflow["jobs"].values()
    assert job["strategy"]["matrix"]["session"] == ["lint", "unit", "e2e", "images", "delivery"]
    assert workflow["permissions"] == {}
    for step in job["steps"]:
        if "uses" in step:
            assert re.search(r"@[0-9a-f]{40}$", step["uses"]), step["uses"]

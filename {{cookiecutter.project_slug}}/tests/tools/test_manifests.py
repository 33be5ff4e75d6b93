"""What `nox -s manifests` and `nox -s scan` render and run (tools/manifests.py, tools/scan.py)."""

from __future__ import annotations

from pathlib import Path

import yaml

from tools import manifests, scan
from tools.manifests import WORKFLOWS, render, scanners
from tools.project import ROOT


def test_render_writes_what_the_cluster_receives(kind_overlay: list[dict[str, object]]) -> None:
    path = ROOT / render("kind")
    assert path == ROOT / "build" / "manifests" / "kind.yaml"
    assert [doc for doc in yaml.safe_load_all(path.read_text()) if doc] == kind_overlay


def test_every_source_renders(kind_overlay: list[dict[str, object]]) -> None:
    for source in manifests.SOURCES:
        assert (ROOT / render(source)).stat().st_size > 0


def test_schemas_are_the_kind_nodes_kubernetes_version() -> None:
    nodes = yaml.safe_load((ROOT / "k8s" / "kind-config.yaml").read_text())["nodes"]
    version = manifests.kubernetes_version()
    assert all(node["image"].startswith(f"kindest/node:v{version}@sha256:") for node in nodes)


def test_scanners_see_both_dockerfiles_every_workflow_and_the_rendered_tree() -> None:
    commands = [" ".join(command) for command in scanners()]
    assert WORKFLOWS
    for target in ("Dockerfile", "Dockerfile.train", "build/manifests", *WORKFLOWS):
        assert any(target in command for command in commands), target


def test_scan_uses_the_trivy_it_finds() -> None:
    assert Path(scan.trivy()).name == "trivy"

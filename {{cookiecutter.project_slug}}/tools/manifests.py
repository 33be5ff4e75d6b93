"""Everything `nox -s manifests` runs, in order; the first failure stops it.

    python -m tools.manifests [OVERLAY ...]   # default: kind production (k8s/hpa-load always)

Renders the overlays into build/manifests/, validates them against the kind node's Kubernetes
schema, applies our own rules (tools/manifest_rules.py), then the generic scanners: yamllint,
checkov, trivy config, zizmor, the workflow and Dependabot schemas, actionlint. k8s/monitoring is
rendered and scanned too, once its PrometheusRule is found current (tools/monitoring.py).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from tools import manifest_rules, monitoring
from tools.project import ROOT, run

RENDERED = ROOT / "build" / "manifests"
# What `render` accepts: the overlays, k8s/hpa-load (the autoscaler demo's load Job) and
# k8s/monitoring (rules, scrape and dashboard for the Prometheus Operator and Grafana).
SOURCES = {
    "kind": "k8s/overlays/kind",
    "production": "k8s/overlays/production",
    "hpa-load": "k8s/hpa-load",
    "monitoring": "k8s/monitoring",
}
WORKFLOWS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / ".github" / "workflows").glob("*.yml"))


def kubernetes_version() -> str:
    """The kind node image's Kubernetes version, e.g. '1.37.0' for kindest/node:v1.37.0@..."""
    image = yaml.safe_load((ROOT / "k8s" / "kind-config.yaml").read_text())["nodes"][0]["image"]
    if match := re.search(r":v(\d+\.\d+\.\d+)@sha256:[0-9a-f]{64}$", image):
        return match[1]
    raise SystemExit(f"k8s/kind-config.yaml: {image!r} is not kindest/node:vX.Y.Z@sha256:<digest>")


def render(source: str) -> str:
    """`kubectl kustomize` one of SOURCES into build/manifests/<source>.yaml; return that path."""
    RENDERED.mkdir(parents=True, exist_ok=True)
    path = str((RENDERED / f"{source}.yaml").relative_to(ROOT))
    run("kubectl", "kustomize", SOURCES[source], "--output", path)
    return path


def scanners() -> list[list[str]]:
    """The generic scanners, after our own rules."""
    checkov = ["checkov", "--quiet", "--compact", "--skip-download"]
    trivy = ["trivy", "config", "--quiet", "--skip-check-update", "--exit-code", "1"]
    schema = ["check-jsonschema", "--builtin-schema"]
    return [
        [*checkov, "--framework", "kubernetes", "-d", "build/manifests"],
        [*checkov, "--framework", "dockerfile", "-f", "Dockerfile", "-f", "Dockerfile.train"],
        [*trivy, "--ignorefile", "k8s/.trivyignore.yaml", "build/manifests"],
        [*trivy, "Dockerfile"],
        [*trivy, "Dockerfile.train"],
        ["zizmor", "--offline", "--persona", "pedantic", ".github"],
        [*schema, "vendor.github-workflows", *WORKFLOWS],
        [*schema, "vendor.dependabot", ".github/dependabot.yml"],
        ["actionlint", *WORKFLOWS],
    ]


def check(overlays: Sequence[str]) -> int:
    if monitoring.main(["--check"]):
        return 1
    rendered = [render(overlay) for overlay in overlays]
    extras = [render("hpa-load"), render("monitoring")]  # its CRs have no schema here: warned
    run("yamllint", "--strict", "-c", ".yamllint.yaml", "k8s", ".github")
    version = kubernetes_version()
    run("kubernetes-validate", "--strict", "--quiet", "-k", version, *rendered, *extras)
    if manifest_rules.main(rendered):
        return 1
    for command in scanners():
        run(*command)
    return 0


def main(argv: Sequence[str]) -> int:
    try:
        return check(argv or ["kind", "production"])
    except subprocess.CalledProcessError as error:
        print(f"error: {Path(str(error.cmd[0])).name} failed ({error.returncode})", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The Prometheus Operator's copy of k8s/monitoring/rules.yaml, which stays the one to edit.

    python -m tools.monitoring           # write k8s/monitoring/prometheus-rule.yaml from rules.yaml
    python -m tools.monitoring --check   # fail if it is stale (`nox -s manifests` runs this)

kustomize cannot put a file into a resource's spec, so the PrometheusRule is written here: the
rule file's own text, indented under `spec:`, comments and all.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from tools.project import ROOT

MONITORING = ROOT / "k8s" / "monitoring"
RULES = MONITORING / "rules.yaml"
RESOURCE = MONITORING / "prometheus-rule.yaml"
HEADER = """\
# Written by `python -m tools.monitoring` from rules.yaml: edit that file, then run it.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: serving-rules
spec:
"""


def prometheus_rule(rules: str) -> str:
    """The PrometheusRule holding `rules` (a Prometheus rule file's text) as its spec."""
    lines = rules.splitlines(keepends=True)
    return HEADER + "".join(f"  {line}" if line.strip() else line for line in lines)


def main(argv: Sequence[str], rules: Path = RULES, resource: Path = RESOURCE) -> int:
    expected = prometheus_rule(rules.read_text())
    if "--check" not in argv:
        resource.write_text(expected)
        return 0
    if not resource.is_file() or resource.read_text() != expected:
        print(f"error: {resource.name} is stale: run `python -m tools.monitoring`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The PrometheusRule stays the rule file's copy: written from it, and stale once it changes."""

from __future__ import annotations

from pathlib import Path

import yaml

from tools import monitoring


def test_the_committed_prometheus_rule_is_current() -> None:
    assert monitoring.main(["--check"]) == 0


def test_its_spec_is_the_rule_file(tmp_path: Path) -> None:
    resource = tmp_path / "prometheus-rule.yaml"
    assert monitoring.main([], resource=resource) == 0
    document = yaml.safe_load(resource.read_text())
    assert document["kind"] == "PrometheusRule"
    assert document["spec"] == yaml.safe_load(monitoring.RULES.read_text())


def test_an_edited_rule_makes_it_stale(tmp_path: Path) -> None:
    rules, resource = tmp_path / "rules.yaml", tmp_path / "prometheus-rule.yaml"
    rules.write_text(monitoring.RULES.read_text())
    monitoring.main([], rules=rules, resource=resource)
    assert monitoring.main(["--check"], rules=rules, resource=resource) == 0
    rules.write_text(rules.read_text().replace("> 0.01", "> 0.05"))
    assert monitoring.main(["--check"], rules=rules, resource=resource) == 1
    resource.unlink()
    assert monitoring.main(["--check"], rules=rules, resource=resource) == 1

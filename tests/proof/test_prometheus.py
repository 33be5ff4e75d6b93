"""What proof/prometheus.py and proof/figures.py read of a bake's files and Prometheus' answers."""

from __future__ import annotations

import json
import re
from pathlib import Path

from proof import figures, prometheus

RULES = """
groups:
  - name: serving
    rules:
      - record: job:requests:rate5m
        expr: sum by (job) (rate(http_requests_total{job="x"}[5m]))
      - alert: Busy
        expr: job:requests:rate5m > 10
"""


def test_rule_expressions_by_recorded_series_or_alert(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    found = prometheus.rule_expressions(rules)
    assert found == {
        "job:requests:rate5m": 'sum by (job) (rate(http_requests_total{job="x"}[5m]))',
        "Busy": "job:requests:rate5m > 10",
    }
    assert re.fullmatch(prometheus.RECORDED, "job:requests:rate5m")
    assert not re.fullmatch(prometheus.RECORDED, "Busy")


def test_panel_queries_set_the_variables(tmp_path: Path) -> None:
    dashboard = tmp_path / "dashboard.json"
    panels = [
        {"title": "Rate", "targets": [{"expr": 'rate(a{job="$job"}[5m])'}, {"expr": "b"}]},
        {"title": "Row", "type": "row"},
    ]
    dashboard.write_text(json.dumps({"panels": panels}))
    assert prometheus.panel_queries(dashboard, {"job": "svc"}) == {
        "Rate": ['rate(a{job="svc"}[5m])', "b"],
        "Row": [],
    }


def test_figures_label_each_series_and_write_a_png(tmp_path: Path) -> None:
    result = [{"metric": {"class": "0"}, "values": [[1.0, "2"], [2.0, "3"]]}]
    series = figures.series(result, "class {class}")
    assert series == {"class 0": [(1.0, 2.0), (2.0, 3.0)]}
    path = figures.draw({"mix": series, "empty": {}}, tmp_path / "f.png")
    assert path.read_bytes()[:4] == b"\x89PNG"

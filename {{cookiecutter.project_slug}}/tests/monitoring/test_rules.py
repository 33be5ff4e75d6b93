"""k8s/monitoring/rules.yaml under promtool: valid, and each alert group's test file passes
(every alert fires on series that should fire it and stays silent on healthy ones)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).parent
RULES = HERE.parents[1] / "k8s" / "monitoring" / "rules.yaml"
TEST_FILES = sorted(HERE.glob("*.test.yaml"))


@pytest.fixture(scope="module")
def promtool() -> str:
    """promtool (the `prometheus` package of Debian and Ubuntu). Missing: fail in CI, else skip."""
    found = shutil.which("promtool")
    if found is None:
        message = "no promtool on PATH (apt-get install prometheus)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def promtool_run(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], cwd=HERE, capture_output=True, text=True, check=False, timeout=120
    )


def test_the_rules_file_is_valid(promtool: str) -> None:
    result = promtool_run(promtool, "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda path: path.name)
def test_alert_group(promtool: str, test_file: Path) -> None:
    result = promtool_run(promtool, "test", "rules", test_file.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_silent() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    alerts = {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}
    fired: set[str] = set()
    silent: set[str] = set()
    for test_file in TEST_FILES:
        for case in yaml.safe_load(test_file.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check["exp_alerts"] else silent).add(check["alertname"])
    assert alerts == fired == silent

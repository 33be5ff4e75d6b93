"""The harness's condensed failure output: the pytest report whole, tables folded (no Docker)."""

from __future__ import annotations

from tests.report import condense, fold_tables, pytest_report

FAILURE = """\
=================================== FAILURES ===================================
_____________________________ test_probes_answer ______________________________
    def test_probes_answer(server: Container) -> None:
>       assert server.request("/healthz").status == 200
E       TimeoutError: timed out
tests/container/test_smoke.py:17: TimeoutError"""
SMOKE = f"""\
============================= test session starts ==============================
collected 12 items

tests/container/test_smoke.py F...........                               [100%]

{FAILURE}
=============================== warnings summary ===============================
tests/container/test_smoke.py::test_x
  DeprecationWarning: something long-winded
=========================== short test summary info ============================
FAILED tests/container/test_smoke.py::test_probes_answer - TimeoutError: timed out
========================= 1 failed, 11 passed in 42.00s ========================="""
TRIVY_ROW = "│ libssl3 │ CVE-2026-0001 │ HIGH │ fixed │ 3.0.1 │ 3.0.2 │ a long title │"
TRIVY = "\n".join(
    [
        "ml-service:abc (debian 12.9)",
        "┌─────────┬───────────────┬──────┐",
        *[TRIVY_ROW] * 400,
        "└─────────┴───────────────┴──────┘",
    ]
)
NOX = """\
nox > Running session smoke
nox > Command pytest -m docker tests/container failed with exit code 1
nox > Session smoke failed.
nox > Running session scan
nox > Session scan was successful in 80 seconds.
nox > Ran multiple sessions:
nox > * smoke: failed
nox > * scan: success"""


def test_the_pytest_report_survives_a_long_scanner_table() -> None:
    stdout = f"{SMOKE}\n{TRIVY}\n{TRIVY}"
    assert len(stdout) > 50_000  # the old harness kept the last 6000 characters: table rows
    text = condense(stdout, NOX)
    report = text.split("--- nox ---")[0]
    assert FAILURE in report
    assert "FAILED tests/container/test_smoke.py::test_probes_answer - TimeoutError" in report
    assert "= 1 failed, 11 passed in 42.00s =" in report
    assert "warnings summary" not in report
    assert "test session starts" not in report
    assert TRIVY_ROW not in report
    assert len(text) < 10_000


def test_failed_nox_sessions_are_listed_and_passing_ones_are_not() -> None:
    nox_part = condense("", NOX).split("--- nox ---\n")[1].split("\n---")[0]
    assert nox_part.splitlines() == [
        "nox > Command pytest -m docker tests/container failed with exit code 1",
        "nox > Session smoke failed.",
        "nox > * smoke: failed",
    ]


def test_tables_keep_their_first_and_last_lines_and_a_count() -> None:
    folded = fold_tables(["before", *TRIVY.splitlines()[1:], "after"])
    assert folded == [
        "before",
        "┌─────────┬───────────────┬──────┐",
        "[... 400 table lines ...]",
        "└─────────┴───────────────┴──────┘",
        "after",
    ]


def test_short_tables_and_ascii_tables_at_the_end() -> None:
    short = ["| a | b |", "| 1 | 2 |"]
    assert fold_tables(["x", *short]) == ["x", *short]
    ascii_table = ["+---+", *["| 1 |"] * 20, "+---+"]
    assert fold_tables(ascii_table) == ["+---+", "[... 20 table lines ...]", "+---+"]


def test_every_failures_and_errors_section_is_kept() -> None:
    errors = "==== ERRORS ====\n____ ERROR at setup of test_y ____\nE   fixture 'nope' not found"
    quiet = "==== short test summary info ====\nERROR tests/t.py::test_y\n1 error in 0.10s"
    lines = f"{SMOKE}\n{errors}\n{quiet}".splitlines()
    report = pytest_report(lines)
    assert "E   fixture 'nope' not found" in report
    assert report[-1] == "1 error in 0.10s"  # `pytest -q` ends without a header
    assert report.count("E       TimeoutError: timed out") == 1


def test_output_without_pytest_is_only_tailed() -> None:
    text = condense("x" * 10_000, "boom", tail=100)
    assert "--- pytest report ---" not in text
    assert "--- nox ---" not in text
    assert "[... 9900 characters before ...]\n" + "x" * 100 in text
    assert text.endswith("--- output 2 of 2 (tables folded) ---\nboom")

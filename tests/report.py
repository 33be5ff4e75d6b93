"""Condense a failed subprocess's output so that the failure's own report comes first, whole.

A baked `nox -s build smoke scan push` prints thousands of lines; keeping only the tail once kept
trivy's tables and lost the pytest failure that mattered. `condense` puts pytest's FAILURES,
ERRORS and short summary sections and nox's failure lines first, then the tail of everything
with long tables folded to their first and last lines.
"""

from __future__ import annotations

import re

# `==== FAILURES ====`, `____ test_x ____` is inside; the run's last line is also a header.
SECTION = re.compile(r"^=+ (?P<name>.+?) =+$")
KEPT_SECTIONS = {"FAILURES", "ERRORS", "short test summary info"}
FINAL_SUMMARY = re.compile(r"\b(failed|passed|errors?|no tests ran)\b")
NOX_FAILURE = re.compile(r"^nox > .*\b(failed|error|Error|interrupted)\b")
# Box-drawing (trivy, rich) and ASCII (`+---+`, `| a |`) table lines.
TABLE_LINE = re.compile(r"^\s*[│┃├┝┠┣└┗┌┏╭╰─━═|+╞╘╒╔╚║]")
FOLD_AT = 8  # a run of table lines longer than this is folded
TAIL_CHARS = 6000


def condense(*streams: str, tail: int = TAIL_CHARS) -> str:
    """The pytest report and nox failure lines of `streams`, whole; then each stream's tail."""
    parts = []
    for stream in streams:
        report = pytest_report(stream.splitlines())
        if report:
            parts.append("--- pytest report ---\n" + "\n".join(report))
    failures = [line for s in streams for line in s.splitlines() if NOX_FAILURE.match(line)]
    if failures:
        parts.append("--- nox ---\n" + "\n".join(failures))
    for number, stream in enumerate(streams, 1):
        folded = "\n".join(fold_tables(stream.splitlines()))
        if len(folded) > tail:
            folded = f"[... {len(folded) - tail} characters before ...]\n{folded[-tail:]}"
        parts.append(f"--- output {number} of {len(streams)} (tables folded) ---\n{folded}")
    return "\n".join(parts)


def pytest_report(lines: list[str]) -> list[str]:
    """Every FAILURES, ERRORS and short summary section, and the final `== ... ==` line."""
    kept: list[str] = []
    keeping = False
    for line in lines:
        header = SECTION.match(line)
        if header:
            name = header["name"]
            keeping = name in KEPT_SECTIONS
            if not keeping and FINAL_SUMMARY.search(name) and kept:
                kept.append(line)  # the run's outcome closes its report
                continue
        if keeping:
            kept.append(line)
    return kept


def fold_tables(lines: list[str]) -> list[str]:
    """`lines` with each run of more than FOLD_AT table lines cut to its first and last."""
    folded: list[str] = []
    run: list[str] = []
    for line in [*lines, ""]:  # the sentinel ends a table at the end of the output
        if TABLE_LINE.match(line):
            run.append(line)
            continue
        if len(run) > FOLD_AT:
            folded += [run[0], f"[... {len(run) - 2} table lines ...]", run[-1]]
        else:
            folded += run
        run = []
        folded.append(line)
    return folded[:-1]

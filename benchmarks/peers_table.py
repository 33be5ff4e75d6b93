"""benchmarks/peers.py's one table: for each load, every server's req/s, p50, share of the
ceiling and RSS, and ours/peer throughput ratios (ours on /predict and, when the bake serves
it, on V2). Pure: tests/test_peers.py covers it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from peers_protocols import CEILING, OURS, OURS_V2, Contender
from wrk import Result, Setting


def ratio(ours: Result | None, theirs: Result) -> str:
    """How many times the peer's throughput ours is ("" without ours or a peer's figure)."""
    if ours is None or theirs.requests_per_second <= 0:
        return ""
    return f"{ours.requests_per_second / theirs.requests_per_second:.2f}x"


def table(
    contenders: Sequence[Contender],
    figures: Mapping[str, Mapping[Setting, Result]],
    rss: Mapping[str, float | None],
    loads: Sequence[Setting],
) -> list[str]:
    """The markdown lines; RSS of ours-v2 is ours' (one process serves both)."""
    with_v2 = OURS_V2 in figures
    header = "| rows | c | server | protocol | req/s | p50 ms | of ceiling | RSS MB | ours/this |"
    rule = "| --- " * 9 + "|"
    if with_v2:
        header += " ours V2/this |"
        rule += " --- |"
    lines = [header, rule]
    for load in loads:
        ceiling = figures[CEILING][load]
        for contender in contenders:
            result = figures[contender.name][load]
            share = ""
            if contender.name != CEILING and ceiling.requests_per_second > 0:
                share = f"{100 * result.requests_per_second / ceiling.requests_per_second:.0f}%"
            memory = rss.get(OURS if contender.name == OURS_V2 else contender.name)
            cells = [
                str(load.rows),
                str(load.concurrency),
                contender.name,
                contender.protocol,
                f"{result.requests_per_second:.0f}",
                f"{result.p50_ms:.2f}",
                share,
                "?" if memory is None else f"{memory:.0f}",
                ratio(figures[OURS].get(load), result) if contender.peer else "",
            ]
            if with_v2:
                cells.append(ratio(figures[OURS_V2].get(load), result) if contender.peer else "")
            if result.errors:
                cells[4] += f" ({result.errors} errors)"
            lines.append("| " + " | ".join(cells) + " |")
    return lines

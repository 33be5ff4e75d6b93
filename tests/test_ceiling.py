"""The ceiling benchmark's pure parts (benchmarks/wrk.py, ceiling_app.py, ceiling.py): reading
wrk's report, request bodies, pinning, and refusing to run blind."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEMPLATE

sys.path.insert(0, str(TEMPLATE / "benchmarks"))  # the scripts import each other by file name

import ceiling
import ceiling_app
import wrk

WRK_OUTPUT = """Running 5s test @ http://127.0.0.1:8000/predict
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     9.37ms    3.02ms  40.11ms   80.31%
    Req/Sec   858.54    102.21     1.03k    76.00%
  Latency Distribution
     50%  890.00us
     75%   10.46ms
     90%   12.45ms
     99%    1.52s
  4274 requests in 5.00s, 1.32MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 3
Requests/sec:    854.34
Transfer/sec:    270.39KB
"""


def test_wrk_report_is_read_in_milliseconds() -> None:
    result = wrk.parse_wrk(WRK_OUTPUT)
    assert result == wrk.Result(854.34, 0.89, 1520.0, errors=6)
    assert "854.3 req/s" in result.line("ours")
    assert "errors=6" in result.line("ours")


def test_unexpected_wrk_output_is_an_error() -> None:
    with pytest.raises(ValueError, match="unexpected wrk output"):
        wrk.parse_wrk("wrk: command failed")


def test_bodies_carry_the_same_rows_in_both_protocols() -> None:
    example = {"a": 1.0, "b": 2.0}
    bodies = wrk.bodies(example, 3)
    assert json.loads(bodies["/predict"]) == {"instances": [example] * 3}
    assert json.loads(bodies["/invocations"]) == {
        "dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0]] * 3}
    }
    [tensor] = json.loads(bodies[wrk.V2_INFER])["inputs"]
    assert (tensor["shape"], tensor["datatype"]) == ([3, 2], "FP64")
    assert tensor["data"] == [1.0, 2.0] * 3


def test_wrk_script_posts_the_body_file(tmp_path: Path) -> None:
    script = wrk.wrk_script(tmp_path / "body.json")
    assert 'wrk.method = "POST"' in script
    assert f'io.open("{tmp_path / "body.json"}"' in script


def test_missing_wrk_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert ceiling.main([]) == 2
    assert "apt-get install -y wrk" in capsys.readouterr().err


def test_missing_model_says_to_train_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    assert ceiling.main(["--project", str(tmp_path / "nothing")]) == 2
    assert "nox -s train" in capsys.readouterr().err


def test_the_bakes_own_serve_entry_point_is_read_from_its_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project.scripts]\nfraud-train = "fraud.cli:train"\nfraud-serve = "fraud.cli:serve"\n'
    )
    assert ceiling.serve_script(tmp_path) == "fraud-serve"


def test_shares_of_the_ceiling_are_printed() -> None:
    reference = wrk.Result(5000.0, 0.2, 0.5, errors=0)
    line = wrk.Result(2000.0, 0.4, 1.0, errors=0).line("ours /predict rows=1 c=8", reference)
    assert line.endswith("40% of ceiling")
    assert "of ceiling" not in wrk.Result(2000.0, 0.4, 1.0, errors=0).line("ours")


def test_rss_is_read_from_proc_status() -> None:
    assert wrk.rss_mb("Name:\tpython\nVmRSS:\t  153600 kB\nThreads:\t1\n") == 150.0
    with pytest.raises(ValueError, match="VmRSS"):
        wrk.rss_mb("Name:\tpython\n")
    if Path("/proc/self/status").is_file():  # Linux: this process has a resident size
        assert (wrk.process_rss_mb(os.getpid()) or 0) > 1


def test_server_and_load_are_pinned_to_different_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert wrk.pinned(wrk.SERVER_CPU) == ["taskset", "-c", "0"]
    assert wrk.pinned(wrk.LOAD_CPU) == ["taskset", "-c", "1"]
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert wrk.pinned(wrk.SERVER_CPU) == []


def test_ceiling_app_reads_the_whole_body_and_answers_a_constant() -> None:
    chunks = [
        {"type": "http.request", "body": b'{"instances":', "more_body": True},
        {"type": "http.request", "body": b" []}", "more_body": False},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return chunks.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(ceiling_app.app({"type": "http"}, receive, send))
    assert not chunks
    assert sent[0]["status"] == 200
    assert sent[1]["body"] == b"{}"


def test_server_choice_compares_each_candidate_with_its_own_ceiling_and_uvicorn_h11(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import server_choice

    def results(rps: float) -> dict[wrk.Setting, wrk.Result]:
        return {s: wrk.Result(rps / s.rows**0.5, 1.0, 2.0, 0) for s in wrk.SETTINGS}

    server_choice.table(
        {
            "uvicorn-h11": (results(4000), results(1000), 90.0),
            "granian": (results(8000), results(3000), 120.0),
        }
    )
    rows = capsys.readouterr().out.splitlines()
    assert (
        rows[-2]
        == "| uvicorn-h11 | 4000 | 1000 (25%) | 100 (25%) | 1.00 ms | 90 MB | 1.00x, 1.00x |"
    )
    assert (
        rows[-1] == "| granian | 8000 | 3000 (38%) | 300 (38%) | 1.00 ms | 120 MB | 3.00x, 3.00x |"
    )

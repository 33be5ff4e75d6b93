"""The benchmark's pure parts: reading wrk's report, request bodies, refusing to run blind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }} import (
    bench,
)

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
    result = bench.parse_wrk(WRK_OUTPUT)
    assert result == bench.Result(854.34, 0.89, 1520.0, errors=6)
    assert "854.3 req/s" in result.line("ours")
    assert "errors=6" in result.line("ours")


def test_unexpected_wrk_output_is_an_error() -> None:
    with pytest.raises(ValueError, match="unexpected wrk output"):
        bench.parse_wrk("wrk: command failed")


def test_bodies_carry_the_same_rows_in_both_protocols() -> None:
    example = {"a": 1.0, "b": 2.0}
    bodies = bench.bodies(example, 3)
    assert json.loads(bodies["/predict"]) == {"instances": [example] * 3}
    assert json.loads(bodies["/invocations"]) == {
        "dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0]] * 3}
    }


def test_wrk_script_posts_the_body_file(tmp_path: Path) -> None:
    script = bench.wrk_script(tmp_path / "body.json")
    assert 'wrk.method = "POST"' in script
    assert f'io.open("{tmp_path / "body.json"}"' in script


def test_missing_wrk_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert bench.main([]) == 2
    assert "apt-get install -y wrk" in capsys.readouterr().err


def test_missing_model_says_to_train_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    assert bench.main(["--model", str(tmp_path / "nothing")]) == 2
    assert "nox -s train" in capsys.readouterr().err

"""benchmarks/peers.py's pure parts: each protocol's body and answer for the same rows, the
agreement check, MLServer's repository files, the table, and refusing to run blind. The servers
themselves run in `python benchmarks/peers.py --project BAKE` (CONTRIBUTING's Benchmarks rule)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import TEMPLATE

sys.path.insert(0, str(TEMPLATE / "benchmarks"))  # the scripts import each other by file name

import peers
import peers_check
import peers_protocols as protocols
import peers_servers
import peers_table
from wrk import Result, Setting

COLUMNS = ["mean radius", "mean texture"]
ROWS = [[1.5, 2.0], [3.0, 4.25]]


def test_instances_are_one_record_per_row_as_the_bake_takes_them() -> None:
    assert json.loads(protocols.instances(COLUMNS, ROWS)) == {
        "instances": [
            {"mean radius": 1.5, "mean texture": 2.0},
            {"mean radius": 3.0, "mean texture": 4.25},
        ]
    }


def test_a_v2_tensor_holds_the_rows_row_major_in_feature_order() -> None:
    assert json.loads(protocols.v2_tensor(COLUMNS, ROWS, name="input")) == {
        "inputs": [
            {"name": "input", "shape": [2, 2], "datatype": "FP64", "data": [1.5, 2.0, 3.0, 4.25]}
        ]
    }


def test_v2_columns_are_one_tensor_per_feature_decoded_as_a_dataframe_for_mlserver() -> None:
    body = json.loads(protocols.v2_columns(COLUMNS, ROWS))
    assert body["parameters"] == {"content_type": "pd"}
    assert body["inputs"] == [
        {"name": "mean radius", "shape": [2], "datatype": "FP64", "data": [1.5, 3.0]},
        {"name": "mean texture", "shape": [2], "datatype": "FP64", "data": [2.0, 4.25]},
    ]
    assert "outputs" not in body  # the server's default: predict


def test_every_peer_is_asked_for_what_ours_answers() -> None:
    """Labels and, from a classifier, probabilities: MLServer's scikit-learn runtime answers
    only `predict` unless asked; the ONNX runtime and the BentoML service give both."""
    sklearn = peers.peer_contenders(classifier=True)[0]
    assert json.loads(sklearn.body(COLUMNS, ROWS))["outputs"] == [
        {"name": "predict"},
        {"name": "predict_proba"},
    ]
    regressor = peers.peer_contenders(classifier=False)[0]
    assert "outputs" not in json.loads(regressor.body(COLUMNS, ROWS))


def test_labels_are_read_from_each_protocols_answer() -> None:
    assert protocols.predictions({"predictions": [0, 1], "model_version": "1"}) == [0, 1]
    v2 = {
        "outputs": [
            {"name": "predict_proba", "data": [0.9, 0.1, 0.2, 0.8]},
            {"name": "predict", "shape": [2, 1], "data": [0, 1]},
        ]
    }
    assert protocols.v2_predict(v2) == [0, 1]
    assert protocols.v2_predict({"outputs": [{"name": "label", "data": [1, 0]}]}) == [1, 0]


def test_disagreement_names_the_first_row_that_differs() -> None:
    assert protocols.disagreement([0, 1, 1], [0, 1, 1]) is None
    assert protocols.disagreement([0, 1, 1], [0, 0, 1]) == "row 1: ours 1, theirs 0"
    assert protocols.disagreement([0, 1], [0]) == "1 answers for 2 rows"
    assert protocols.disagreement(["cat", "dog"], ["cat", "dog"]) is None
    # Regressors: runtimes sum floats in their own order.
    assert protocols.disagreement([10.0], [10.0 + 1e-9]) is None
    assert protocols.disagreement([10.0], [10.1]) is not None


def test_check_rows_are_the_input_example_and_the_onnx_reference_rows(tmp_path: Path) -> None:
    example = {"columns": COLUMNS, "data": ROWS}
    (tmp_path / "input_example.json").write_text(json.dumps(example))
    assert peers_check.check_rows(tmp_path) == (COLUMNS, ROWS)
    reference = {"inputs": [[5.0, 6.0]], "predictions": [1]}
    (tmp_path / "onnx_reference.json").write_text(json.dumps(reference))
    assert peers_check.check_rows(tmp_path) == (COLUMNS, [*ROWS, [5.0, 6.0]])


def test_mlserver_repository_serves_one_model_quietly_on_its_own_ports(tmp_path: Path) -> None:
    model_file = tmp_path / "model.joblib"
    settings = peers_servers.mlserver_repository(
        tmp_path / "repo", peers_servers.SKLEARN_RUNTIME, model_file, 8123, workers=0
    )
    written = json.loads((tmp_path / "repo" / "settings.json").read_text())
    assert written == settings
    assert (written["host"], written["http_port"], written["parallel_workers"]) == (
        "127.0.0.1",
        8123,
        0,
    )
    assert len({8123, written["grpc_port"], written["metrics_port"]}) == 3
    assert written["debug"] is False  # MLServer logs every request in debug mode
    assert json.loads((tmp_path / "repo" / "model-settings.json").read_text()) == {
        "name": protocols.V2_MODEL,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": str(model_file)},
    }


def test_peer_versions_are_pinned_exactly() -> None:
    assert all("==" in package for package in peers_servers.PEER_PACKAGES)


def test_the_table_has_every_server_per_load_with_ours_per_peer_ratios() -> None:
    load = Setting(100, 8)
    figures = {
        "ceiling": {load: Result(2000.0, 1.0, 2.0, 0)},
        "ours": {load: Result(600.0, 3.0, 9.0, 0)},
        "ours-v2": {load: Result(900.0, 2.0, 5.0, 0)},
        "mlserver-onnx": {load: Result(450.0, 4.0, 9.0, 2)},
    }
    ours_v2 = protocols.Contender("ours-v2", "V2", "/v2", protocols.v2_tensor, list, peer=False)
    contenders = [peers.CEILING, peers.OURS, ours_v2, peers.peer_contenders(True)[1]]
    rss = {"ceiling": 30.0, "ours": 80.4, "mlserver-onnx": None}
    lines = peers_table.table(contenders, figures, rss, [load])
    assert lines[0].endswith("| ours/this | ours V2/this |")
    assert lines[2:] == [
        "| 100 | 8 | ceiling | /predict body | 2000 | 1.00 |  | 30 |  |  |",
        "| 100 | 8 | ours | /predict | 600 | 3.00 | 30% | 80 |  |  |",
        "| 100 | 8 | ours-v2 | V2 | 900 | 2.00 | 45% | 80 |  |  |",
        "| 100 | 8 | mlserver-onnx | V2 tensor | 450 (2 errors) | 4.00 | 22% | ? | 1.33x | 2.00x |",
    ]
    del figures["ours-v2"]
    without_v2 = peers_table.table(
        [peers.OURS, peers.peer_contenders(True)[1]], figures, rss, [load]
    )
    assert without_v2[0].endswith("| ours/this |")
    assert without_v2[-1].endswith("| 1.33x |")


def test_missing_wrk_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert peers.main(["--project", "."]) == 2
    assert "apt-get install -y wrk" in capsys.readouterr().err


def test_missing_model_says_to_train_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    assert peers.main(["--project", str(tmp_path)]) == 2
    assert "nox -s train" in capsys.readouterr().err


def test_a_server_that_does_not_answer_is_named_before_any_timing() -> None:
    nobody = f"http://127.0.0.1:{peers.servers.free_port()}"  # nothing listens there
    problems = peers_check.disagreements(
        {"ours": nobody, "bentoml": nobody},
        [peers.OURS, peers.peer_contenders(True)[2]],
        COLUMNS,
        ROWS,
    )
    assert len(problems) == 1
    assert problems[0].startswith("ours: no answer (<urlopen error")


def how_they_ended(processes: list[subprocess.Popen[bytes]]) -> dict[int, str | None]:
    """peers.how_it_ended of each process, once all have ended (or after 10 s)."""
    deadline = time.monotonic() + 10
    while True:
        ended = {process.pid: peers.how_it_ended(process.pid) for process in processes}
        if None not in ended.values() or time.monotonic() > deadline:
            return ended
        time.sleep(0.05)


@pytest.mark.skipif(not hasattr(os, "waitid"), reason="os.waitid is Linux's (not macOS's)")
def test_a_server_that_ended_says_how_and_stays_waitable() -> None:
    running = subprocess.Popen(["sleep", "30"])
    exiting = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    try:
        assert peers.how_it_ended(running.pid) is None
        running.send_signal(signal.SIGKILL)
        assert how_they_ended([running, exiting]) == {
            running.pid: "was killed by signal 9",
            exiting.pid: "exited with 3",
        }
        assert running.wait(timeout=10) == -signal.SIGKILL  # still the caller's to reap
    finally:
        running.kill()
        running.wait()
        exiting.wait()

"""Every way training can fail, through the real entry point: one line on stderr, its own code.

The processes run side by side (each spends seconds importing MLflow and scikit-learn).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_breast_cancer

from {{ cookiecutter.package_name }}.cli import (
    TrainExit,
)
from {{ cookiecutter.package_name }}.config import (
    TrainSettings,
)
from {{ cookiecutter.package_name }}.exports import (
    locked,
)
from {{ cookiecutter.package_name }}.promotion import (
    CHAMPION,
)
from {{ cookiecutter.package_name }}.tracking import (
    PROBE_SECONDS,
    RETRY_DEFAULTS,
    TrackingError,
    bound_retries,
    connect,
    describe,
)
from {{ cookiecutter.package_name }}.train import (
    run,
)

PACKAGE = "{{ cookiecutter.package_name }}"
ENTRY_POINT = Path(sys.executable).with_name(f"{PACKAGE}-train")
TRAINING_DOC = Path(__file__).parents[1] / "docs" / "training.md"


@dataclass(frozen=True)
class Exited:
    """What one `-train` process left: exit code and stderr."""

    code: int
    stderr: str

    @property
    def error_line(self) -> str:
        """The one `error:` line, checked to be the only one and the last line of stderr."""
        lines = self.stderr.strip().splitlines()
        errors = [line for line in lines if line.startswith("error: ")]
        assert errors == lines[-1:], self.stderr
        assert "Traceback" not in self.stderr, self.stderr
        return errors[0]


def train_processes(settings: TrainSettings, cases: dict[str, dict[str, str]]) -> dict[str, Exited]:
    """Run the entry point once per case (its variables over `settings`), all at once."""
    variables = {name.upper(): value for name, value in settings.model_dump().items()}
    base = {k: v for k, v in os.environ.items() if k not in variables}
    base |= {name: str(value) for name, value in variables.items() if value is not None}
    processes = {
        case: subprocess.Popen(
            [str(ENTRY_POINT)],
            env=base | overrides,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for case, overrides in cases.items()
    }
    exited = {}
    for case, process in processes.items():
        _, stderr = process.communicate(timeout=600)
        exited[case] = Exited(process.returncode, stderr)
    return exited


@pytest.fixture(scope="module")
def data_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CSV files that no classifier should train on, each wrong in its own way."""
    folder = tmp_path_factory.mktemp("bad-data")
    frame = load_breast_cancer(as_frame=True).frame
    frame.assign(**{"mean radius": frame["mean radius"].where(frame.index != 7, np.inf)}).to_csv(
        folder / "inf.csv", index=False
    )
    (folder / "overflow.csv").write_text(
        frame.head(40).to_csv(index=False).replace("\n17.99,", "\n-1e999,", 1)
    )
    # Big enough that pandas' chunked reader once typed the column differently per chunk.
    rows = 300_000
    pd.DataFrame(
        {
            "size": np.where(np.arange(rows) < rows - 5, (np.arange(rows) % 9).astype(str), "big"),
            "target": np.arange(rows) % 2,
        }
    ).to_csv(folder / "late-text.csv", index=False)
    frame.assign(target=np.linspace(0, 1, len(frame))).to_csv(folder / "price.csv", index=False)
    # Finite, but too large to scale: the estimator refuses what preprocessing made of them.
    huge = np.where(frame.index % 2 == 1, 1.7e308, -1.7e308)
    frame.assign(**{"mean radius": huge}).to_csv(folder / "huge.csv", index=False)
    frame.assign(target=np.arange(len(frame)) % 200).to_csv(folder / "counts.csv", index=False)
    # The label named twice: pandas would call the second `target.1`, a perfect feature.
    pd.concat([frame, frame[["target"]]], axis=1).to_csv(folder / "target-twice.csv", index=False)
    frame.rename(columns={"mean area": "mean radius "}).to_csv(
        folder / "look-alike.csv", index=False
    )
    return folder


@pytest.fixture(scope="module")
def silent_server() -> Iterator[str]:
    """An http:// URL whose socket accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)  # the kernel completes the handshakes; nobody reads
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture(scope="module")
def failures(
    train_settings: Callable[..., TrainSettings],
    data_files: Path,
    silent_server: str,
    data_server: tuple[str, Path],
) -> dict[str, Exited]:
    """One process per case below, run side by side."""
    cases = {
        "model-name-slash": {"MODEL_NAME": "team/churn"},
        "model-name-colon": {"MODEL_NAME": "churn:v2"},
        "model-name-dots": {"MODEL_NAME": ".."},
        "gate-min-above-one": {"GATE_MIN": "2"},
        "inf": {"DATA_PATH": str(data_files / "inf.csv")},
        "overflow": {"DATA_PATH": str(data_files / "overflow.csv")},
        "late-text": {"DATA_PATH": str(data_files / "late-text.csv")},
        "price": {"DATA_PATH": str(data_files / "price.csv")},
        "huge": {"DATA_PATH": str(data_files / "huge.csv")},
        "counts": {"DATA_PATH": str(data_files / "counts.csv")},
        "target-twice": {"DATA_PATH": str(data_files / "target-twice.csv")},
        "look-alike": {"DATA_PATH": str(data_files / "look-alike.csv")},
        "url-not-found": {"DATA_PATH": f"{data_server[0]}/no-such.csv"},
        "unknown-scheme": {"MLFLOW_TRACKING_URI": "foo://tracking.example"},
        "closed-port": {"MLFLOW_TRACKING_URI": closed_port_url()},
        "silent-server": {"MLFLOW_TRACKING_URI": silent_server},
        "sqlite-under-a-file": {"MLFLOW_TRACKING_URI": f"sqlite:///{data_files}/inf.csv/m.db"},
    }
    return train_processes(train_settings(), cases)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("model-name-slash", "MODEL_NAME='team/churn': Value error, a registered model name"),
        ("model-name-colon", "MODEL_NAME='churn:v2': Value error"),
        ("model-name-dots", "MODEL_NAME='..': Value error"),
        ("gate-min-above-one", "GATE_MIN='2': "),
    ],
)
def test_bad_settings_exit_2(failures: dict[str, Exited], case: str, message: str) -> None:
    exited = failures[case]
    assert exited.code == TrainExit.BAD_SETTINGS, exited.stderr
    assert exited.error_line.startswith(f"error: invalid configuration: {message}")
    assert exited.stderr.count("\n") == 1  # checked before anything else runs or logs


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("inf", r"'mean radius' of DATA_PATH=.*inf.csv has 1 infinite values \(first on line 9"),
        ("overflow", r"'mean radius' .* has 1 infinite values \(first on line 2: "),
        ("late-text", r"column 'size' .* text in 5 \(first on line 299997: 'big'\)"),
        ("price", r"TARGET_COLUMN='target' of .*price.csv looks continuous: .*TASK=regression"),
        ("counts", r"looks continuous: to train a regressor, set TASK=regression \(the"),
        ("huge", r"^error: cannot fit \w+ on .*huge.csv: "),
        ("target-twice", r"names: 'target' \(columns 31, 32\); give each column one name$"),
        ("look-alike", r"names: 'mean radius' \(columns 1, 4: also 'mean radius '\); give"),
        ("url-not-found", r"DATA_PATH=http://127\.0\.0\.1:\d+/no-such\.csv cannot be read: HTTP"),
    ],
)
def test_bad_data_exit_3(
    failures: dict[str, Exited], data_files: Path, case: str, message: str
) -> None:
    exited = failures[case]
    assert exited.code == TrainExit.BAD_DATA, exited.stderr
    assert re.search(message, exited.error_line), exited.error_line
    # No list of every value, whatever the temp folder's path (a long TMPDIR, as on macOS).
    assert len(exited.error_line.replace(str(data_files), "")) < 400
    if case != "huge":  # found on reading, before MLflow or numpy's warnings have a say
        assert exited.stderr.count("\n") == 1, exited.stderr


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unknown-scheme", r"foo://tracking.example is not usable: .*unsupported URI"),
        ("closed-port", r"http://127.0.0.1:\d+ does not answer \(.*refused"),
        ("silent-server", r"http://127.0.0.1:\d+ does not answer \(timed out, waited up to 10 s"),
        ("sqlite-under-a-file", r"sqlite:///.*/inf.csv/m.db is not usable: "),
    ],
)
def test_unusable_tracking_store_exits_4(
    failures: dict[str, Exited], case: str, message: str
) -> None:
    exited = failures[case]
    assert exited.code == TrainExit.TRACKING, exited.stderr
    assert re.match(f"error: MLFLOW_TRACKING_URI={message}", exited.error_line), exited.stderr


@pytest.mark.parametrize("server", ["closed-port", "silent"])
def test_a_dead_server_is_found_in_seconds(
    server: str, silent_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = closed_port_url() if server == "closed-port" else silent_server
    for name in RETRY_DEFAULTS:  # recorded as unset, so the defaults set below are undone
        monkeypatch.setenv(name, "0")
        monkeypatch.delenv(name)
    started = time.monotonic()
    with pytest.raises(TrackingError, match=f"MLFLOW_TRACKING_URI={url} does not answer"):
        connect(url)
    assert time.monotonic() - started < PROBE_SECONDS + 2


def test_calls_after_fitting_give_up_in_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    # MLflow's own defaults retry a refused connection for about four minutes.
    for name in RETRY_DEFAULTS:  # recorded as unset, so bound_retries' defaults are undone
        monkeypatch.setenv(name, "0")
        monkeypatch.delenv(name)
    bound_retries()
    started = time.monotonic()
    with pytest.raises(MlflowException, match="Max retries exceeded"):
        MlflowClient(closed_port_url()).search_experiments(max_results=1)
    assert time.monotonic() - started < 15  # 3 tries, backoff of 1 and 2 s plus jitter


@pytest.mark.parametrize("first_run", [True, False], ids=["first-run", "after-a-champion"])
def test_failed_export_leaves_the_alias_and_export_alone(
    train_settings: Callable[..., TrainSettings], tmp_path: Path, first_run: bool
) -> None:
    settings = train_settings()
    client = MlflowClient(settings.mlflow_tracking_uri)
    if first_run:
        # A folder nobody may create, root included (sysfs; on macOS a read-only volume).
        unwritable = Path("/sys/model")
    else:
        assert run(settings).export_dir == settings.export_dir  # version 1, the champion
        in_the_way = tmp_path / "a-file"
        in_the_way.write_text("not a folder")
        unwritable = in_the_way / "model"
    failed = train_processes(settings, {"export": {"EXPORT_DIR": str(unwritable)}})["export"]
    assert failed.code == TrainExit.EXPORT, failed.stderr
    version = "1" if first_run else "2"
    assert failed.error_line.startswith(
        f"error: EXPORT_DIR={unwritable}: version {version} could not be exported ("
    )
    assert failed.error_line.endswith("; alias 'champion' not moved")
    assert client.get_model_version(settings.model_name, version).tags["quality_gate"] == "passed"
    aliases = client.get_registered_model(settings.model_name).aliases
    assert aliases == ({} if first_run else {CHAMPION: 1})
    assert not unwritable.exists()


def test_a_duplicated_header_leaves_the_champion_and_its_export_alone(
    train_settings: Callable[..., TrainSettings], data_files: Path
) -> None:
    settings = train_settings()
    run(settings)  # version 1, the champion
    exported = os.readlink(settings.export_dir)
    refused = train_processes(
        settings, {"twice": {"DATA_PATH": str(data_files / "target-twice.csv")}}
    )["twice"]
    assert refused.code == TrainExit.BAD_DATA, refused.stderr
    assert "has duplicated column names: 'target'" in refused.error_line
    client = MlflowClient(settings.mlflow_tracking_uri)
    assert client.get_registered_model(settings.model_name).aliases == {CHAMPION: 1}
    assert len(client.search_model_versions(f"name='{settings.model_name}'")) == 1
    assert os.readlink(settings.export_dir) == exported


def test_a_training_that_cannot_get_the_export_lock_exits_5(
    train_settings: Callable[..., TrainSettings],
) -> None:
    settings = train_settings()
    with locked(settings.export_dir, timeout=5):  # another training exporting, for this one
        waited = train_processes(settings, {"held": {"EXPORT_LOCK_SECONDS": "1"}})["held"]
    assert waited.code == TrainExit.EXPORT, waited.stderr
    lock = settings.export_dir.with_name(f".{settings.export_dir.name}.lock")
    assert waited.error_line == (
        f"error: EXPORT_DIR={settings.export_dir}: version 1 could not be exported (another "
        f"training (pid {os.getpid()}) held {lock} for 1 s; wait for it, or raise "
        "EXPORT_LOCK_SECONDS); alias 'champion' not moved"
    )
    client = MlflowClient(settings.mlflow_tracking_uri)
    assert client.get_model_version(settings.model_name, "1").tags["quality_gate"] == "passed"
    assert client.get_registered_model(settings.model_name).aliases == {}
    assert not settings.export_dir.exists()


def test_the_training_doc_lists_every_exit_code() -> None:
    table = {
        line.split("|")[1].strip()
        for line in TRAINING_DOC.read_text().splitlines()
        if line.startswith("| ") and line.split("|")[1].strip().isdigit()
    }
    assert {str(code.value) for code in TrainExit} <= table


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("https://me:s3cret@mlflow.example:8443/x", "https://me:***@mlflow.example:8443/x"),
        ("http://me@127.0.0.1:5000", "http://me@127.0.0.1:5000"),
        ("sqlite:///mlflow.db", "sqlite:///mlflow.db"),
    ],
)
def test_messages_name_the_uri_without_its_password(uri: str, shown: str) -> None:
    assert describe(uri) == f"MLFLOW_TRACKING_URI={shown}"

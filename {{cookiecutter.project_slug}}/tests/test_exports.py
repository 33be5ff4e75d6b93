"""EXPORT_DIR on disk: the symlink swap, its lock, what interrupted exports leave, the modes.

Real processes hold the lock and are killed with SIGKILL in the middle of an export; real
exports come from the session's MLflow store.
"""

from __future__ import annotations

import ast
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from {{ cookiecutter.package_name }}.exports import (
    FILE_MODE,
    FOLDER_MODE,
    LockTimeoutError,
    locked,
    publish,
    stage,
)
from {{ cookiecutter.package_name }}.promotion import (
    export,
)
from {{ cookiecutter.package_name }}.train import (
    TrainResult,
)

PACKAGE = "{{ cookiecutter.package_name }}"
# Run by a child process: take EXPORT_DIR's lock, say so, and keep it (until killed).
HOLD_LOCK = f"""
import sys, time
from pathlib import Path
from {PACKAGE}.exports import locked
with locked(Path(sys.argv[1]), 5):
    print("locked", flush=True)
    time.sleep(600)
"""
# Run by a child process: export a registered version as training does, and stop in the middle
# (the staging folder filled, EXPORT_DIR not yet swapped) to be killed there.
STOP_MID_EXPORT = f"""
import sys, time
from pathlib import Path
from {PACKAGE}.exports import locked, stage
from {PACKAGE}.promotion import _download
name, version, run_id, target = sys.argv[1:]
def download_then_stop(folder):
    _download(name, version, run_id, folder)
    print(folder, flush=True)
    time.sleep(600)
with locked(Path(target), 5):
    stage(Path(target), version, download_then_stop)
"""


@contextmanager
def child(script: str, *args: str, env: dict[str, str] | None = None) -> Iterator[tuple[int, str]]:
    """Run `script` until it prints its first line: (pid, that line); SIGKILL it afterwards."""
    process = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | (env or {}),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line, f"the child exited with {process.wait()} before saying it was ready"
        yield process.pid, line
    finally:
        process.kill()
        process.wait()


def listing(folder: Path) -> dict[str, str]:
    """Each entry of `folder`: a symlink's target, else `dir` or `file`."""
    return {
        entry.name: os.readlink(entry)
        if entry.is_symlink()
        else ("dir" if entry.is_dir() else "file")
        for entry in folder.iterdir()
    }


def exported_version(export_dir: Path) -> str:
    return str(yaml.safe_load((export_dir / "MLmodel").read_text())["metadata"]["model_version"])


def fake_export(export_dir: Path, content: str) -> None:
    """Stage and publish a one-file export (no MLflow): what the swap does, quickly."""
    with locked(export_dir, 5):
        folder = stage(export_dir, "1", lambda into: (into / "MLmodel").write_text(content))
        publish(folder, export_dir)


def test_an_export_is_a_relative_symlink_to_a_readable_sibling(
    trained: TrainResult, tmp_path: Path
) -> None:
    target = tmp_path / "build" / "model"
    assert export(trained.model_name, trained.model_version, trained.run_id, target) == target
    entries = listing(target.parent)
    folder = entries["model"]
    assert folder.startswith(f".model-v{trained.model_version}-")
    assert "/" not in folder  # relative: the project folder can move
    assert entries == {"model": folder, folder: "dir", ".model.lock": "file"}
    assert exported_version(target) == trained.model_version

    moved = tmp_path / "moved"
    (tmp_path / "build").rename(moved)
    assert exported_version(moved / "model") == trained.model_version


def test_each_export_replaces_the_link_and_keeps_one_previous(
    trained: TrainResult, tmp_path: Path
) -> None:
    target = tmp_path / "model"
    names, resolved = [], []
    for _ in range(3):
        export(trained.model_name, trained.model_version, trained.run_id, target)
        names.append(os.readlink(target))
        resolved.append(target.resolve())  # where a server loading now reads from
    assert len(set(names)) == 3  # a new folder each time
    assert (resolved[1] / "MLmodel").is_file()  # replaced, still whole for a slow reader
    assert not resolved[0].exists()
    entries = listing(tmp_path)
    assert entries == {
        "model": names[2],
        ".model.previous": names[1],
        names[2]: "dir",
        names[1]: "dir",
        ".model.lock": "file",
    }


@pytest.mark.parametrize("content", ["stale.txt", "MLmodel"])
def test_a_real_export_folder_from_before_is_replaced(
    trained: TrainResult, tmp_path: Path, content: str
) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / content).write_text("from an export of the two-rename layout")
    export(trained.model_name, trained.model_version, trained.run_id, target)
    assert target.is_symlink()
    assert exported_version(target) == trained.model_version
    assert not (target / "stale.txt").exists()
    # Kept one export long as `previous`, then gone.
    legacy = tmp_path / os.readlink(tmp_path / ".model.previous")
    assert (legacy / content).read_text() == "from an export of the two-rename layout"
    export(trained.model_name, trained.model_version, trained.run_id, target)
    assert not legacy.exists()


def test_what_interrupted_exports_left_is_removed_by_the_next(
    trained: TrainResult, tmp_path: Path
) -> None:
    target = tmp_path / "model"
    fake_export(target, "current")
    current = os.readlink(target)
    leftovers = [
        ".model-v7-k2j4h1",  # staging, killed during the download
        ".model-legacy-0a1b2c3d",  # moved aside, killed before the swap
        ".model-old",  # the two-rename layout's backup
        ".model-x9y8z7w6",  # the two-rename layout's staging
    ]
    for name in leftovers:
        (tmp_path / name).mkdir()
        (tmp_path / name / "MLmodel").write_text("half")
    (tmp_path / ".model-link").symlink_to(".model-v7-k2j4h1")  # killed between two renames
    (tmp_path / "data.csv").write_text("not ours")
    (tmp_path / ".models-of-someone-else").mkdir()

    export(trained.model_name, trained.model_version, trained.run_id, target)
    assert set(listing(tmp_path)) == {
        "model",
        os.readlink(target),
        ".model.previous",
        current,
        ".model.lock",
        "data.csv",
        ".models-of-someone-else",
    }


def test_a_training_killed_mid_export_leaves_the_export_and_no_lock(
    trained: TrainResult, tracking_uri: str, tmp_path: Path
) -> None:
    target = tmp_path / "model"
    fake_export(target, "the champion's export")
    before = os.readlink(target)
    arguments = (trained.model_name, trained.model_version, trained.run_id, str(target))
    with child(STOP_MID_EXPORT, *arguments, env={"MLFLOW_TRACKING_URI": tracking_uri}) as (
        pid,
        staging,
    ):
        assert (Path(staging) / "MLmodel").is_file()  # the download is there, half a swap away
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert os.readlink(target) == before
    assert (target / "MLmodel").read_text() == "the champion's export"
    assert Path(staging).is_dir()  # left behind: nobody else may remove it while it is written
    with locked(target, timeout=1):  # the kernel dropped the dead process's lock
        pass
    export(*arguments[:3], target)
    assert exported_version(target) == trained.model_version
    assert not Path(staging).exists()


def test_the_lock_waits_a_bounded_time_and_names_its_holder(tmp_path: Path) -> None:
    target = tmp_path / "build" / "model"
    with child(HOLD_LOCK, str(target)) as (pid, _):
        started = time.monotonic()
        with pytest.raises(LockTimeoutError) as error, locked(target, timeout=0.5):
            pass
        assert 0.5 <= time.monotonic() - started < 3
    assert str(error.value) == (
        f"another training (pid {pid}) held {tmp_path}/build/.model.lock for 0.5 s; "
        "wait for it, or raise EXPORT_LOCK_SECONDS"
    )
    with locked(target, timeout=1):  # free again once the holder is gone
        pass


# Reads EXPORT_DIR/MLmodel in a loop until SIGTERM, then prints how many reads found each
# content; an error ends it early, printed.
READ_IN_A_LOOP = """
import collections, signal, sys
seen = collections.Counter()
def report(*_):
    print(dict(seen), flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, report)
print("reading", flush=True)
while True:
    try:
        with open(sys.argv[1]) as file:
            text = file.read()
        seen[f"{text[:1]}x{len(text)}"] += 1
    except OSError as error:
        print(f"{type(error).__name__}: {error}", flush=True)
        sys.exit(1)
"""


def test_readers_never_see_a_missing_or_partial_export(tmp_path: Path) -> None:
    target = tmp_path / "model"
    fake_export(target, "0" * 4096)
    reader = subprocess.Popen(
        [sys.executable, "-c", READ_IN_A_LOOP, str(target / "MLmodel")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert reader.stdout is not None
    assert reader.stdout.readline() == "reading\n"
    try:
        for swap in range(1, 301):
            fake_export(target, str(swap % 10) * 4096)
    finally:
        reader.send_signal(signal.SIGTERM)
    output, _ = reader.communicate(timeout=10)
    seen = ast.literal_eval(output)  # no FileNotFoundError, or the loop would have said so
    assert set(seen) <= {f"{digit}x4096" for digit in "0123456789"}, seen  # never partial
    assert len(seen) > 1, seen  # it did read across swaps
    assert len(list(tmp_path.iterdir())) == 5  # link, previous, two folders, lock


def test_exported_folders_are_world_readable_whatever_the_umask(
    trained: TrainResult, tmp_path: Path
) -> None:
    previous = os.umask(0o077)
    try:
        target = tmp_path / "model"
        export(trained.model_name, trained.model_version, trained.run_id, target)
    finally:
        os.umask(previous)
    modes = {
        path.relative_to(tmp_path): stat.S_IMODE(path.stat().st_mode)
        for path in [target.resolve(), *target.resolve().rglob("*")]
    }
    assert len(modes) > 5
    for path, mode in modes.items():
        expected = FOLDER_MODE if (tmp_path / path).is_dir() else FILE_MODE
        assert mode == expected, f"{path}: {oct(mode)}"

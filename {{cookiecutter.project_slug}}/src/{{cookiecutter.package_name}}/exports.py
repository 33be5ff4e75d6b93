"""EXPORT_DIR on disk: one lock, a folder per export, and a symlink swapped in one rename.

With EXPORT_DIR=build/model:

    build/model -> .model-v3-k2j4h1          relative symlink, replaced with os.replace (atomic)
    build/.model-v3-k2j4h1/                  the export: folders 0755, files 0644
    build/.model.previous -> .model-v2-8fq0  the export it replaced, kept until the next one
    build/.model.lock                        flock'ed from gating to moving the alias

A reader sees the old export or the new one, never none or half of one; one that resolved the
link just before a swap can still read the replaced export to the end. Anything else named
`.model-*` was left by an interrupted export (or the two-rename layout before this one) and is
removed under the lock, when no other training can be writing it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

POLL_SECONDS = 0.2
# Readable by any user, whatever the umask: the serving image runs as UID 10001 and a bind
# mount keeps the host's modes. A model is no secret: the image it ships in holds it the same.
FOLDER_MODE = 0o755
FILE_MODE = 0o644


class LockTimeoutError(TimeoutError):
    """Another training held EXPORT_DIR's lock for longer than the wait allowed."""


@dataclass(frozen=True)
class Layout:
    """The paths of one EXPORT_DIR (absolute; its own symlink not followed)."""

    link: Path

    @classmethod
    def of(cls, export_dir: Path) -> Layout:
        return cls(Path(os.path.abspath(export_dir)))

    @property
    def lock(self) -> Path:
        return self.link.with_name(f".{self.link.name}.lock")

    @property
    def prefix(self) -> str:
        """What every folder and temporary link of this EXPORT_DIR is named from."""
        return f".{self.link.name}-"

    @property
    def previous(self) -> Path:
        """The link to the export the current one replaced."""
        return self.link.with_name(f".{self.link.name}.previous")

    def kept(self) -> set[Path]:
        """The folders the link and `previous` point at: all that `clean` leaves."""
        return {
            link.parent / os.readlink(link)
            for link in (self.link, self.previous)
            if link.is_symlink()
        }


@contextmanager
def locked(export_dir: Path, timeout: float) -> Iterator[None]:
    """Hold EXPORT_DIR's lock (waiting up to `timeout` seconds), creating its parent folder.
    The kernel releases it when the process ends, kill -9 included: no stale lock."""
    layout = Layout.of(export_dir)
    layout.link.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(layout.lock, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        _acquire(descriptor, layout.lock, timeout)
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())  # who holds it, for the message
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _acquire(descriptor: int, lock: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip()
                raise LockTimeoutError(
                    f"another training (pid {holder or 'unknown'}) held {lock} for "
                    f"{timeout:g} s; wait for it, or raise EXPORT_LOCK_SECONDS"
                ) from None
            time.sleep(POLL_SECONDS)


def stage(export_dir: Path, version: str, fill: Callable[[Path], object]) -> Path:
    """A new export folder next to EXPORT_DIR, filled by `fill` and made world-readable.
    Call under `locked`: stale folders of interrupted exports are removed first."""
    layout = Layout.of(export_dir)
    clean(layout)
    folder = Path(tempfile.mkdtemp(prefix=f"{layout.prefix}v{version}-", dir=layout.link.parent))
    try:
        fill(folder)
        make_readable(folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def publish(folder: Path, export_dir: Path) -> None:
    """Point EXPORT_DIR at `folder` in one rename, and `previous` at what it replaced; clean.

    Call under `locked`. Raises only before the swap: after it, EXPORT_DIR is the new export
    and what is left to tidy is the next export's to remove. An EXPORT_DIR that is a real
    folder (exported before this layout) is renamed aside first: once per project, the one
    moment without an EXPORT_DIR.
    """
    layout = Layout.of(export_dir)
    temporary = _temporary_link(layout, "link", folder.name)
    replaced = None
    if layout.link.is_symlink():
        replaced = os.readlink(layout.link)
    elif layout.link.is_dir():
        replaced = f"{layout.prefix}legacy-{uuid.uuid4().hex[:8]}"
        layout.link.rename(layout.link.with_name(replaced))
    os.replace(temporary, layout.link)
    with contextlib.suppress(OSError):
        if replaced is not None:
            os.replace(_temporary_link(layout, "link-previous", replaced), layout.previous)
        clean(layout)


def _temporary_link(layout: Layout, name: str, target: str) -> Path:
    """A new symlink to `target` beside EXPORT_DIR, to be renamed over a link in one step.
    Targets are relative (sibling names): the project folder may move or be mounted."""
    temporary = layout.link.with_name(f"{layout.prefix}{name}")
    temporary.unlink(missing_ok=True)  # left by an interrupted export
    os.symlink(target, temporary)
    return temporary


def clean(layout: Layout) -> None:
    """Remove this EXPORT_DIR's folders and temporary links other than the `kept` ones."""
    kept = layout.kept()
    for entry in layout.link.parent.iterdir():
        if not entry.name.startswith(layout.prefix) or entry in kept:
            continue
        if entry.is_symlink():
            entry.unlink(missing_ok=True)
        elif entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)


def make_readable(folder: Path) -> None:
    """Folders FOLDER_MODE, files FILE_MODE, all the way down (links are left as they are)."""
    for root, _, files in os.walk(folder):  # not into linked folders: they are not ours
        os.chmod(root, FOLDER_MODE)
        for name in files:
            path = os.path.join(root, name)
            if stat.S_ISREG(os.lstat(path).st_mode):
                os.chmod(path, FILE_MODE)

"""uv.lock must match pyproject.toml, or installs from the lock miss what the project declares."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_lock_is_up_to_date_with_pyproject() -> None:
    # uv is on PATH in nox sessions and CI; offline, so only the lock and pyproject are compared.
    result = subprocess.run(
        ["uv", "lock", "--check", "--offline"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"uv.lock is stale, run `uv lock`:\n{result.stderr}"

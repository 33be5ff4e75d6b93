"""A real `mlflow server` for tests: a SQLite backend and an artifact root in a folder of the
test's, on a free loopback port, optionally behind MLflow's basic-auth app."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .waiting import free_port, wait_until_ready

# Measured on a busy 2-core host: a fresh server answered /health after 41 s (creating its
# SQLite tables; the auth app adds its own).
SERVER_SECONDS = 120
ADMIN = "admin"  # basic-auth's admin user, created at the first start with the given password


@contextmanager
def mlflow_server(root: Path, *, admin_password: str | None = None) -> Iterator[str]:
    """Run `mlflow server` with its store in `root` until the block ends; yields its URL.

    With `admin_password`, the server runs `--app-name basic-auth`: every call needs
    MLFLOW_TRACKING_USERNAME=ADMIN and that password (or another user's).
    """
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--host=127.0.0.1",
        f"--port={port}",
        "--workers=1",
        f"--backend-store-uri=sqlite:///{root / 'mlflow.db'}",
        f"--artifacts-destination={root / 'artifacts'}",
    ]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job workers
    if admin_password is not None:
        command.append("--app-name=basic-auth")
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(_auth_config(root, admin_password))
        env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = secrets.token_hex(16)  # signs its CSRF tokens
    log = root / "server.log"
    with log.open("wb") as output:
        server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(
            f"{url}/health",
            timeout=SERVER_SECONDS,
            alive=lambda: server.poll() is None,
            details=lambda: log.read_text()[-3000:],
        )
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def _auth_config(root: Path, admin_password: str) -> Path:
    """basic-auth's settings: its user store in `root`, readers by default, our admin."""
    config = root / "basic_auth.ini"
    config.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{root / 'basic_auth.db'}\n"
        f"admin_username = {ADMIN}\n"
        f"admin_password = {admin_password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    return config

"""Servers the tests start: a free loopback port to start one on, and its URL answering 200."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it; free until someone binds it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_ready(
    url: str,
    *,
    timeout: float,
    alive: Callable[[], bool] | None = None,
    details: Callable[[], str] | None = None,
    interval: float = 0.2,
) -> None:
    """Poll `url` until it answers 200; fail the test at the deadline or once `alive()` says
    the server stopped, with `details()` (a log tail, say) in the message."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline and (alive is None or alive()):
        try:
            with urllib.request.urlopen(url, timeout=min(5.0, timeout)) as answer:
                if answer.status == 200:
                    return
                last = f"HTTP {answer.status}"
        except urllib.error.HTTPError as error:
            last = f"HTTP {error.code}"
        except OSError as error:  # not listening yet, reset, timed out
            last = f"{type(error).__name__}: {error}"
        time.sleep(interval)
    message = f"{url} did not answer 200 within {timeout:g} s ({last})"
    pytest.fail(f"{message}\n{details()}" if details is not None else message)

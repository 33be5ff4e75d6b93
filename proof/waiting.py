"""Waiting for a server: a free loopback port to start it on, and its URL answering 200.

The one home for both in the template's proof: the rehearsal and the benchmarks start servers
(processes or containers) and must not probe them before they listen.
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable


class NotReady(RuntimeError):
    """The URL never answered 200 in time, or what should answer it stopped."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it; free until someone binds it)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def wait_until_ready(
    url: str,
    *,
    timeout: float,
    alive: Callable[[], bool] | None = None,
    details: Callable[[], str] | None = None,
    interval: float = 0.2,
) -> float:
    """Poll `url` with GET until it answers 200; return the seconds that took.

    `alive` says whether the server is still running (a process, a container): once it is not,
    waiting longer is pointless. `details` (a log tail, say) is appended to the NotReady message.
    """
    started = time.monotonic()
    deadline = started + timeout
    last = "no answer yet"
    while True:
        if alive is not None and not alive():
            raise NotReady(_message(f"stopped before {url} answered 200 ({last})", details))
        try:
            # Loopback URLs we built; a short timeout per try so the deadline holds.
            with urllib.request.urlopen(url, timeout=min(5.0, timeout)) as answer:  # noqa: S310
                if answer.status == 200:
                    return time.monotonic() - started
                last = f"HTTP {answer.status}"
        except urllib.error.HTTPError as error:
            last = f"HTTP {error.code}"
        except OSError as error:  # not listening yet, reset, timed out
            last = f"{type(error).__name__}: {error}"
        if time.monotonic() >= deadline:
            line = f"{url} did not answer 200 within {timeout:g} s ({last})"
            raise NotReady(_message(line, details))
        time.sleep(interval)


def _message(line: str, details: Callable[[], str] | None) -> str:
    return f"{line}\n{details()}" if details is not None else line

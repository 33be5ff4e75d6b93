"""Waiting for a real local HTTP server: ready, never ready, or gone."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from proof.waiting import NotReady, free_port, wait_until_ready


class WarmingUp(ThreadingHTTPServer):
    """Answers 503 to its first two requests, 200 afterwards."""

    hits = 0


class NotYet(BaseHTTPRequestHandler):
    server: WarmingUp

    def do_GET(self) -> None:
        self.server.hits += 1
        self.send_response(200 if self.server.hits > 2 else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        """Quiet: the test output is the assertions."""


@pytest.fixture
def warming_up() -> Iterator[str]:
    server = WarmingUp(("127.0.0.1", 0), NotYet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/readyz"
    finally:
        server.shutdown()
        server.server_close()


def test_free_port_can_be_bound() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", free_port()))


def test_waits_through_errors_until_200(warming_up: str) -> None:
    assert wait_until_ready(warming_up, timeout=10, interval=0.01) < 10


def test_gives_up_at_the_deadline_with_the_last_answer(warming_up: str) -> None:
    with pytest.raises(NotReady, match=r"within 0.05 s \(HTTP 503\)\nlogs here"):
        wait_until_ready(warming_up, timeout=0.05, interval=0.1, details=lambda: "logs here")


def test_stops_waiting_once_the_server_is_gone() -> None:
    url = f"http://127.0.0.1:{free_port()}/readyz"
    with pytest.raises(NotReady, match="stopped before"):
        wait_until_ready(url, timeout=60, alive=lambda: False)

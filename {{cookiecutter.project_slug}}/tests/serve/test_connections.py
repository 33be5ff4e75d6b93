"""Slow, silent, departing and too many clients, against the real server over sockets."""

from __future__ import annotations

import asyncio
import http.client
import json
import resource
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sklearn.datasets import load_breast_cancer
from starlette.types import Message, Receive, Scope, Send

from {{ cookiecutter.package_name }}.config import (
    ServeSettings,
)
from {{ cookiecutter.package_name }}.serve.limits import (
    SPARE_FILES,
    make_room_for,
)
from {{ cookiecutter.package_name }}.serve.metrics import (
    Metrics,
    MetricsMiddleware,
)
from {{ cookiecutter.package_name }}.serve.model import (
    ServedModel,
)

from .servers import ThreadServer, running_server, server_in_thread
from .test_app import metric

HEADER_TIMEOUT = 1.5
BODY_TIMEOUT = 1.5
MAX_CONNECTIONS = 10
# How late a deadline may fire on a loaded 2-core runner before the test calls it missed.
SLACK = 5.0
ROW = load_breast_cancer(as_frame=True).data.iloc[0].to_dict()
BODY = json.dumps({"instances": [ROW]}).encode()


@pytest.fixture(scope="module")
def server(exported_model: Path, served_model: ServedModel) -> Iterator[ThreadServer]:
    """One server with short deadlines and a small cap, shared by this module's tests."""
    settings = ServeSettings(
        model_uri=str(exported_model),
        header_timeout_seconds=HEADER_TIMEOUT,
        body_timeout_seconds=BODY_TIMEOUT,
        max_connections=MAX_CONNECTIONS,
    )
    with server_in_thread(settings, served_model) as running:
        yield running


def post_prediction(server: ThreadServer) -> int:
    request = urllib.request.Request(
        server.url("/predict"), data=BODY, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        status: int = response.status
        return status


def read_until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    started = time.monotonic()
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data, time.monotonic() - started


def requests_counted(server: ThreadServer, endpoint: str, status: str) -> float:
    with urllib.request.urlopen(server.url("/metrics"), timeout=30) as response:
        text = response.read().decode()
    try:
        return metric(text, "http_requests_total", endpoint=endpoint, method="POST", status=status)
    except AssertionError:
        return 0.0


def wait_for_count(server: ThreadServer, endpoint: str, status: str, count: float) -> float:
    deadline = time.monotonic() + SLACK
    while (seen := requests_counted(server, endpoint, status)) < count:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return seen


HALF_SENT = {
    "nothing": b"",
    "half-a-request-line": b"POST /pred",
    "half-the-headers": b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: applic",
}


@pytest.mark.parametrize("sent", list(HALF_SENT))
def test_a_connection_without_whole_headers_is_closed_within_the_header_timeout(
    server: ThreadServer, sent: str
) -> None:
    slow = server.connect()
    slow.sendall(HALF_SENT[sent])
    assert post_prediction(server) == 200  # other clients are served meanwhile
    answer, waited = read_until_closed(slow)
    slow.close()
    assert waited < HEADER_TIMEOUT + SLACK
    assert answer == b""  # Granian closes it without an answer, whatever part came


def test_an_idle_kept_alive_connection_is_closed_after_the_header_timeout(
    server: ThreadServer,
) -> None:
    # Granian's header read timeout also runs while a kept-alive connection waits for the
    # next request: HEADER_TIMEOUT_SECONDS is the keep-alive timeout too.
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("GET", "/healthz")
    assert connection.getresponse().read() == b'{"status":"ok"}'
    assert connection.sock is not None
    answer, waited = read_until_closed(connection.sock)
    connection.close()
    assert answer == b""
    assert waited < HEADER_TIMEOUT + SLACK


@pytest.mark.parametrize("endpoint", ["/predict", "/invocations"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_half_a_body_gets_408_within_the_body_timeout_and_is_counted(
    server: ThreadServer, endpoint: str, framing: str
) -> None:
    before = requests_counted(server, endpoint, "408")
    slow = server.connect()
    if framing == "chunked":
        head = "Transfer-Encoding: chunked\r\n"
        partial = b"10\r\n" + BODY[:16] + b"\r\n"
    else:
        head = f"Content-Length: {len(BODY)}\r\n"
        partial = BODY[:20]
    request = f"POST {endpoint} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
    slow.sendall(f"{request}{head}\r\n".encode() + partial)
    assert post_prediction(server) == 200
    answer, waited = read_until_closed(slow)
    slow.close()
    assert waited < BODY_TIMEOUT + SLACK
    head_part, _, body = answer.partition(b"\r\n\r\n")
    assert head_part.startswith(b"HTTP/1.1 408 "), answer
    assert b"\r\nconnection: close\r\n" in head_part.lower(), answer
    assert json.loads(body) == {
        "error": "request timeout",
        "detail": "the request body did not arrive within BODY_TIMEOUT_SECONDS=1.5",
    }
    assert wait_for_count(server, endpoint, "408", before + 1) == before + 1


@pytest.mark.parametrize("endpoint", ["/predict", "/invocations"])
@pytest.mark.parametrize("sent", [0, 20, len(BODY) - 1])
def test_a_client_gone_mid_body_is_counted_as_499_in_one_line(
    server: ThreadServer, endpoint: str, sent: int
) -> None:
    before = requests_counted(server, endpoint, "499")
    gone = server.connect()
    gone.sendall(
        f"POST {endpoint} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(BODY)}\r\n\r\n".encode()
        + BODY[:sent]
    )
    time.sleep(0.2)  # let the app start waiting for the rest
    gone.close()
    assert wait_for_count(server, endpoint, "499", before + 1) == before + 1
    assert requests_counted(server, endpoint, "500") == 0
    log = server.output()
    assert f"POST {endpoint}: 127.0.0.1:" in log
    assert "disconnected before its request was answered" in log
    assert "Traceback" not in log


@pytest.fixture(scope="module")
def patient_server(exported_model: Path, served_model: ServedModel) -> Iterator[ThreadServer]:
    """The cap alone: deadlines long enough that none ends a connection during a test."""
    settings = ServeSettings(
        model_uri=str(exported_model),
        header_timeout_seconds=60,
        body_timeout_seconds=60,
        max_connections=MAX_CONNECTIONS,
    )
    with server_in_thread(settings, served_model) as running:
        yield running


def test_connections_over_the_cap_wait_until_one_closes_and_the_server_carries_on(
    patient_server: ThreadServer,
) -> None:
    # MAX_CONNECTIONS is Granian's backpressure: it accepts no more connections than that
    # (each costs memory), the next ones wait in the kernel's listen backlog.
    server = patient_server
    held = [server.connect() for _ in range(MAX_CONNECTIONS)]
    try:
        for sock in held:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t")
        waiting = server.connect(timeout=0.5)  # the kernel completes the handshake
        waiting.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        with pytest.raises(TimeoutError):
            waiting.recv(1)  # not accepted: nobody reads it yet
        held.pop().close()  # one slot frees: the waiting connection is taken and answered
        waiting.settimeout(30)
        answer, _ = read_until_closed(waiting)
        waiting.close()
        assert answer.startswith(b"HTTP/1.1 200 "), answer
        assert answer.endswith(b'{"status":"ok"}'), answer
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + SLACK
    while True:  # the held connections close on the server's side a moment later
        try:
            assert post_prediction(server) == 200
            break
        except (OSError, urllib.error.HTTPError):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert "Traceback" not in server.output()


@pytest.mark.parametrize("endpoint", ["/predict", "/invocations"])
def test_deeply_nested_json_is_400_over_http(server: ThreadServer, endpoint: str) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request(
        "POST", endpoint, body=b"[" * 10_000, headers={"Content-Type": "application/json"}
    )
    response = connection.getresponse()
    assert response.status == 400
    assert json.loads(response.read())["error"] == "JSON nested too deeply"
    connection.close()
    assert "Traceback" not in server.output()


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_head_probes_answer_200_without_a_body(server: ThreadServer, path: str) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("HEAD", path)
    response = connection.getresponse()
    assert response.status == 200
    assert response.read() == b""
    connection.close()


def test_a_request_cut_by_the_drain_timeout_is_one_line_and_exits_0(
    exported_model: Path, tmp_path: Path
) -> None:
    with running_server(
        exported_model, tmp_path / "server.log", DRAIN_SECONDS="1", BODY_TIMEOUT_SECONDS="60"
    ) as server:
        stalled = server.connect()
        stalled.sendall(
            b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(BODY)}\r\n\r\n".encode()
            + BODY[:10]
        )
        time.sleep(0.2)
        server.process.send_signal(signal.SIGTERM)
        answer, _ = read_until_closed(stalled)
        stalled.close()
        assert server.process.wait(timeout=60) == 0, server.output()
    assert answer.startswith(b"HTTP/1.1 503 "), answer
    assert b"the drain timeout cut this request" in answer
    log = server.output()
    assert "POST /predict cut by the drain timeout" in log
    assert "Traceback" not in log


def test_the_drain_cut_is_counted_as_499_not_500() -> None:
    # What serve/server.py does when DRAIN_SECONDS run out: cancel the request's task.
    metrics = Metrics({"/predict"})
    sent: list[Message] = []

    async def stalled_app(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.Event().wait()  # waits for a body that never comes

    async def record(message: Message) -> None:
        sent.append(message)

    async def cut() -> None:
        middleware = MetricsMiddleware(stalled_app, metrics)
        scope = {"type": "http", "method": "POST", "path": "/predict"}
        task = asyncio.create_task(middleware(scope, record_receive, record))
        await asyncio.sleep(0.01)
        task.cancel()
        await task  # ends without raising: the middleware answered and counted it

    async def record_receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": True}

    asyncio.run(cut())
    assert sent[0]["status"] == 503
    samples = metrics.render().decode()
    assert 'http_requests_total{endpoint="/predict",method="POST",status="499"} 1.0' in samples
    assert 'status="500"' not in samples


def test_the_open_file_limit_is_raised_to_fit_the_connection_cap() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        assert make_room_for(100) is None  # 100 + spare fit in 256
        assert make_room_for(300) is None  # raised to fit
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 300 + SPARE_FILES
        if hard != resource.RLIM_INFINITY:
            warning = make_room_for(hard)
            assert warning is not None
            assert f"MAX_CONNECTIONS={hard} needs {hard + SPARE_FILES} open files" in warning
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

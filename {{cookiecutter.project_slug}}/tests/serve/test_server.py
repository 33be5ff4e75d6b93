"""The real server: Granian in one process; it drains in-flight requests on SIGTERM, exits 0."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sklearn.datasets import load_breast_cancer

from {{ cookiecutter.package_name }} import (
    cli,
)
from {{ cookiecutter.package_name }}.config import (
    ServeSettings,
)
from {{ cookiecutter.package_name }}.serve import (
    server as serve_server,
)

from .servers import Server, free_port, running_server

ROW = load_breast_cancer(as_frame=True).data.iloc[0].to_dict()
PACKAGE = "{{ cookiecutter.package_name }}"


@pytest.fixture
def server(exported_model: Path, tmp_path: Path) -> Iterator[Server]:
    """`<package>-serve` on a free port, serving the exported model."""
    with running_server(exported_model, tmp_path / "server.log", DRAIN_SECONDS="30") as running:
        yield running


def start_request_in_flight(port: int, body: bytes) -> socket.socket:
    """Send a request's headers, and return once the app has started reading its body.

    `Expect: 100-continue` makes Granian answer "100 Continue" when the endpoint asks for the
    body, so the request is provably inside the app, waiting for the rest.
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    headers = (
        "POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
    )
    sock.sendall(headers.encode())
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(4096)
        assert chunk, "connection closed before 100 Continue"
        received += chunk
    assert received.startswith(b"HTTP/1.1 100"), received
    return sock


def wait_until_refused(port: int) -> bool:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        except ConnectionRefusedError:
            return True
        time.sleep(0.05)
    return False


def read_response(sock: socket.socket) -> tuple[int, dict[str, object]]:
    data = b""
    while chunk := sock.recv(65536):  # the server closes the connection after it: draining
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_sigterm_drains_in_flight_request_refuses_new_ones_and_exits_0(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = urllib.request.Request(
        server.url("/predict"),
        data=json.dumps({"instances": [ROW]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.load(response)["predictions"] in ([0], [1])

    monkeypatch.setenv("PORT", str(server.port))
    with pytest.raises(SystemExit) as healthy:
        cli.healthcheck()
    assert healthy.value.code == 0

    body = json.dumps({"instances": [ROW]}).encode()
    in_flight = start_request_in_flight(server.port, body)
    server.process.send_signal(signal.SIGTERM)
    assert wait_until_refused(server.port), server.output()
    in_flight.sendall(body)  # the request that was in flight completes
    status, answer = read_response(in_flight)
    in_flight.close()
    assert status == 200, answer
    assert len(answer["predictions"]) == 1  # type: ignore[arg-type]
    assert server.process.wait(timeout=60) == 0, server.output()
    assert "Shutting down" in server.output()

    with pytest.raises(SystemExit) as unhealthy:
        cli.healthcheck()
    assert unhealthy.value.code == 1


def test_unloadable_model_makes_run_exit_1(tmp_path: Path) -> None:
    settings = ServeSettings(model_uri=str(tmp_path / "missing"), port=free_port())
    assert serve_server.run(settings) == 1


def serve_process(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`<package>-serve` run to its end with `env` added; it must exit by itself."""
    command = Path(sys.executable).with_name(f"{PACKAGE}-serve")
    return subprocess.run(
        [command], env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )


def test_a_broken_model_exits_1_with_one_line_naming_the_setting_and_the_file(
    exported_model: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "model\nsecond line"  # a path with a newline still logs one line
    shutil.copytree(exported_model, folder)
    (folder / "MLmodel").write_text("flavors: [\n")
    ended = serve_process({"MODEL_URI": str(folder), "PORT": str(free_port())})
    assert ended.returncode == 1, ended.stderr
    [line] = [line for line in ended.stderr.splitlines() if " ERROR " in line]
    assert "MODEL_URI=" in line
    assert "MLmodel cannot be read (ScannerError" in line or "(ParserError" in line, line
    assert "Traceback" not in ended.stderr


# HOST and PORT that cannot be listened on: one line naming them, not a server's traceback.
UNUSABLE_ADDRESSES = {
    "unresolvable-name": ("no-such-host.invalid", "not an address to listen on"),
    "not-an-ipv4-address": ("999.1.1.1", "not an address to listen on"),
    "label-too-long": ("a" * 70 + ".example", "not an address to listen on"),
    "not-this-machines-address": ("192.0.2.1", "cannot listen there"),  # TEST-NET-1
    "port-in-use": ("127.0.0.1", "cannot listen there"),
}


@pytest.mark.parametrize("member", list(UNUSABLE_ADDRESSES))
def test_an_unusable_address_exits_2_with_one_line_naming_it(member: str) -> None:
    host, why = UNUSABLE_ADDRESSES[member]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1] if member == "port-in-use" else free_port()
        ended = serve_process({"HOST": host, "PORT": str(port), "MODEL_URI": "unused"})
    assert ended.returncode == 2, ended.stderr
    assert ended.stderr.startswith(f"error: HOST={host!r} PORT={port}: {why} ("), ended.stderr
    assert ended.stderr.count("\n") == 1, ended.stderr


def test_bad_settings_exit_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PORT", "eighty")
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):  # serve() sets them if unset
        monkeypatch.setenv(name, "1")  # so monkeypatch restores the environment afterwards
    with pytest.raises(SystemExit) as exited:
        cli.serve()
    assert exited.value.code == 2
    assert "PORT='eighty'" in capsys.readouterr().err


def test_keep_alive_seconds_is_gone_and_says_so_in_one_line() -> None:
    ended = serve_process({"KEEP_ALIVE_SECONDS": "65", "PORT": str(free_port())})
    assert ended.returncode == 2, ended.stderr
    assert ended.stderr.count("\n") == 1, ended.stderr
    assert "KEEP_ALIVE_SECONDS='65'" in ended.stderr
    assert "idle connections close after HEADER_TIMEOUT_SECONDS" in ended.stderr


def test_a_second_ctrl_c_skips_the_drain(exported_model: Path, tmp_path: Path) -> None:
    with running_server(exported_model, tmp_path / "server.log", DRAIN_SECONDS="300") as server:
        stalled = start_request_in_flight(server.port, b"{}")
        server.process.send_signal(signal.SIGINT)
        assert wait_until_refused(server.port), server.output()  # draining: readiness is gone
        server.process.send_signal(signal.SIGINT)
        status, answer = read_response(stalled)  # long before DRAIN_SECONDS=300
        stalled.close()
        assert server.process.wait(timeout=60) == 0, server.output()
    assert (status, answer["error"]) == (503, "server shutting down")
    assert "cutting 1 request(s) still running" in server.output()

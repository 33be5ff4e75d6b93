"""HTTP/1.1 at the socket: ambiguous framing closes the connection, malformed requests a 400."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.config import (
    ServeSettings,
)
from {{ cookiecutter.package_name }}.serve.model import (
    ServedModel,
)

from .servers import ThreadServer, server_in_thread
from .test_connections import BODY, read_until_closed


@pytest.fixture(scope="module")
def server(exported_model: Path, served_model: ServedModel) -> Iterator[ThreadServer]:
    with server_in_thread(ServeSettings(model_uri=str(exported_model)), served_model) as running:
        yield running


def exchange(server: ThreadServer, data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Send `data` on one connection; every response until the server closes it, parsed."""
    with server.connect(timeout=30) as sock:
        sock.sendall(data)
        received, _ = read_until_closed(sock)
    responses = []
    while received:
        head, _, rest = received.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        length = int(headers["content-length"])
        responses.append((int(status_line.split()[1]), headers, rest[:length]))
        received = rest[length:]
    return responses


def request(head: str, body: bytes = b"") -> bytes:
    return head.replace("\n", "\r\n").encode() + b"\r\n" + body


CHUNKED_BODY = f"{len(BODY):x}\r\n".encode() + BODY + b"\r\n0\r\n\r\n"
PIPELINED = request("GET /healthz HTTP/1.1\nHost: t\n")


def the_only_response(server: ThreadServer, sent: bytes) -> tuple[int, dict[str, str], bytes]:
    """The one answer to `sent` with a request pipelined behind it, which must go unread."""
    responses = exchange(server, sent + PIPELINED)
    assert len(responses) == 1, responses
    return responses[0]


# Both a length and an encoding: a proxy in front may frame the body one way, we another.
# Granian (hyper) frames such a request by its Transfer-Encoding, as RFC 9112 §6.3 says, drops
# the Content-Length before the app sees it, and closes the connection after answering.
AMBIGUOUS = {
    "length-and-chunked": (
        request(
            f"POST /predict HTTP/1.1\nHost: t\nContent-Type: application/json\n"
            f"Content-Length: {len(BODY)}\nTransfer-Encoding: chunked\n",
            CHUNKED_BODY,
        ),
        200,
    ),
    "chunked-first-and-odd-case": (
        request(
            f"POST /predict HTTP/1.1\nHost: t\nTRANSFER-ENCODING: chunked\n"
            f"content-LENGTH: {len(CHUNKED_BODY)}\nContent-Type: application/json\n",
            CHUNKED_BODY,
        ),
        200,
    ),
    "zero-length-and-chunked": (
        request(
            "POST /invocations HTTP/1.1\nHost: t\nContent-Length: 0\nTransfer-Encoding: chunked\n",
            b"0\r\n\r\n",
        ),
        400,  # the chunked body is empty: the app's own "empty body"
    ),
    "on-a-get": (
        request(
            "GET /metadata HTTP/1.1\nHost: t\nContent-Length: 5\nTransfer-Encoding: chunked\n",
            b"0\r\n\r\n",
        ),
        200,
    ),
}


@pytest.mark.parametrize("sent", list(AMBIGUOUS))
def test_length_and_encoding_together_are_framed_by_the_encoding_and_the_connection_closed(
    server: ThreadServer, sent: str
) -> None:
    # RFC 9112 §6.1: the connection closes after the answer, so the pipelined request behind
    # it (a smuggled one, for a proxy that framed the body by its length) is never read.
    data, expected = AMBIGUOUS[sent]
    status, headers, body = the_only_response(server, data)
    assert (status, headers["connection"]) == (expected, "close"), body
    assert ("error" in json.loads(body)) == (status >= 400)


def test_chunked_alone_is_served_and_kept_alive(server: ThreadServer) -> None:
    chunked = request(
        "POST /predict HTTP/1.1\nHost: t\nTransfer-Encoding: chunked\n"
        "Content-Type: application/json\n",
        CHUNKED_BODY,
    )
    closing = request("GET /healthz HTTP/1.1\nHost: t\nConnection: close\n")
    statuses = [status for status, _, _ in exchange(server, chunked + closing)]
    assert statuses == [200, 200]


# Requests Granian's parser refuses before the app sees them; it answers them itself, with an
# empty body (no option makes it JSON), and closes the connection.
MALFORMED = {
    "garbage-request-line": (b"GARBAGE\r\n\r\n", 400),
    "no-http-version": (b"GET /healthz\r\nHost: t\r\n\r\n", 400),
    "header-without-colon": (b"GET /healthz HTTP/1.1\r\nHost t\r\n\r\n", 400),
    "space-before-colon": (b"GET /healthz HTTP/1.1\r\nHost : t\r\n\r\n", 400),
    "two-different-lengths": (
        request("POST /predict HTTP/1.1\nHost: t\nContent-Length: 2\nContent-Length: 3\n", b"{}"),
        400,
    ),
    "signed-length": (
        request("POST /predict HTTP/1.1\nHost: t\nContent-Length: +2\n", b"{}"),
        400,
    ),
    "nul-in-a-header": (b"GET /healthz HTTP/1.1\r\nHost: t\x00x\r\n\r\n", 400),
    # Far past the HTTP/1 buffer (Granian's default, about 400 KiB; a block just past it may arrive
    # in one read and still be parsed): 431, the buffer stays bounded.
    "headers-past-the-buffer": (
        request("GET /healthz HTTP/1.1\nHost: t\nX-Pad: " + "a" * 2_000_000 + "\n"),
        431,
    ),
}


@pytest.mark.parametrize("sent", list(MALFORMED))
def test_a_malformed_request_gets_an_empty_4xx_and_the_connection_closed(
    server: ThreadServer, sent: str
) -> None:
    data, expected = MALFORMED[sent]
    status, headers, body = the_only_response(server, data)
    assert (status, headers["connection"], body) == (expected, "close", b"")
    assert "server" not in headers  # nothing names the server software


def test_a_transfer_coding_other_than_chunked_is_never_decoded(server: ThreadServer) -> None:
    # `gzip, chunked`: the body is de-chunked, not decompressed, so the app reads gzip bytes
    # and refuses them as JSON (a client must send JSON uncompressed; see the 415s).
    coded = gzip.compress(BODY)
    sent = request(
        "POST /predict HTTP/1.1\nHost: t\nContent-Type: application/json\n"
        "Transfer-Encoding: gzip, chunked\nConnection: close\n",
        f"{len(coded):x}\r\n".encode() + coded + b"\r\n0\r\n\r\n",
    )
    [(status, _, body)] = exchange(server, sent)
    assert (status, json.loads(body)["error"]) == (400, "malformed JSON")

"""``body_reader`` under a real gunicorn (gthread, as deployed): the body is read straight
from the socket, byte for byte, and the connection stays right for what follows — a second
request on the same kept-alive connection, pipelined behind the body, and a client that
goes away mid-body."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "--worker-class", "gthread", "--threads", "4",
            "--bind", f"127.0.0.1:{port}", "--keep-alive", "5", "tests.fixtures.body_wsgi:app",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        pytest.fail(f"gunicorn did not start: {err}")
    yield port
    proc.terminate()
    proc.wait(10)


def _put(body: bytes, step: int) -> bytes:
    head = (
        f"PUT /?step={step} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


def _responses(sock: socket.socket, count: int) -> list[bytes]:
    """Read ``count`` responses (each with Content-Length) off the socket."""
    data = b""
    out: list[bytes] = []
    sock.settimeout(20)
    while len(out) < count:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {len(out)} responses"
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(rest) < length:
            chunk = sock.recv(65536)
            assert chunk
            rest += chunk
        assert head.startswith(b"HTTP/1.1 200"), head
        out.append(rest[:length])
        data = rest[length:]
    return out


@pytest.mark.parametrize("size,step", [(1, 7), (5000, 1000), (3_000_001, 1 << 20)])
def test_body_read_from_the_socket_then_the_next_request_on_the_connection(
    server: int, size: int, step: int
) -> None:
    body = os.urandom(size)
    with socket.create_connection(("127.0.0.1", server)) as sock:
        # the body and a second request sent in one go: gunicorn receives part of the
        # body with the headers, and the second request's bytes right behind it
        sock.sendall(_put(body, step) + b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        first, second = _responses(sock, 2)
        assert first.split() == [
            str(size).encode(),
            hashlib.sha256(body).hexdigest().encode(),
            b"_SocketBody",
        ]
        assert second == b"ok"
        # and the connection is still good for another body
        sock.sendall(_put(body[::-1], step))
        (third,) = _responses(sock, 1)
        assert third.split()[1] == hashlib.sha256(body[::-1]).hexdigest().encode()


def test_client_gone_mid_body_leaves_the_server_serving(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(_put(os.urandom(100_000), 65536)[:50_000])  # half the body, then close
    with socket.create_connection(("127.0.0.1", server)) as sock:
        body = os.urandom(70_000)
        sock.sendall(_put(body, 4096))
        (answer,) = _responses(sock, 1)
        assert answer.split()[:2] == [b"70000", hashlib.sha256(body).hexdigest().encode()]

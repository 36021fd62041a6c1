"""A large request body read straight from the socket under gunicorn (请求体直读).

A sealed bid streamed through the API is tens of MiB. Read through the WSGI stack, every
byte is copied five or six times on its way to the application: gunicorn's unreader keeps
what it receives in a ``BytesIO`` and slices it, its ``Body`` buffers it again, and
werkzeug's ``LimitedStream`` copies the result into the caller's buffer. Measured on the
deadline-rush benchmark, that was half of the gunicorn CPU an upload took.

:func:`body_reader` returns a raw reader whose ``readinto`` fills the caller's buffer with
one ``recv_into`` when the request came through gunicorn's own HTTP parser (a body of
known length on a socket): first whatever gunicorn already holds (the bytes read together
with the headers), then the socket, never past ``Content-Length``. The parser's count of
the body still unread is kept current, so gunicorn's handling of the connection after the
response (draining an unread rest, keep-alive) is the same as if its own reader had read
the bytes. Anything else — another server, a chunked body, the test client — gets
werkzeug's ``request.stream``.

This reads gunicorn's request objects (``Body``, ``LengthReader``, ``SocketUnreader``),
which are not public API: the types are checked before use (anything else gets werkzeug's
stream), pyproject asks for gunicorn ≥ 27, and ``tests/core/test_request_body.py`` streams
bodies through a real gunicorn, with a second request pipelined behind the body and a
third on the same kept-alive connection. (Checked by hand on gunicorn 23 too: the reader
works there, but 23's gthread worker serves no pipelined request at all, with or without
it.)
"""

from __future__ import annotations

import io
import socket
from typing import IO, Any

from flask import request
from werkzeug.wsgi import get_input_stream

__all__ = ["body_reader", "read_exactly"]

try:  # gunicorn is a deployment dependency; the platform runs without it too
    from gunicorn.http.body import Body, LengthReader
    from gunicorn.http.unreader import SocketUnreader
except ImportError:  # pragma: no cover - gunicorn is installed with the project
    Body = LengthReader = SocketUnreader = None


class _SocketBody(io.RawIOBase):
    """``readinto`` over gunicorn's buffers, then the socket, up to the body's end."""

    def __init__(self, body: Any, reader: Any, unreader: Any, sock: socket.socket) -> None:
        self._body = body
        self._reader = reader
        self._unreader = unreader
        self._sock = sock
        # bytes gunicorn already took out of the body but has not handed to anyone
        held = body.buf.getvalue()
        body.buf = io.BytesIO()
        self._held = memoryview(held)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if not len(view):
            return 0
        if len(self._held):
            n = min(len(view), len(self._held))
            view[:n] = self._held[:n]
            self._held = self._held[n:]
            return n
        left = int(self._reader.length)
        if left <= 0:
            return 0
        want = min(len(view), left)
        buffered = self._unreader.buf.getvalue()
        if buffered:
            self._unreader.buf = io.BytesIO()
            n = min(want, len(buffered))
            view[:n] = buffered[:n]
            if n < len(buffered):  # beyond what is asked (or beyond the body): keep it
                self._unreader.unread(buffered[n:])
            self._reader.length = left - n
            return n
        try:
            n = self._sock.recv_into(view[:want])
        except OSError:
            self._body.failed = True  # the connection's state is unknown: not reused
            raise
        if n == 0:
            self._body.failed = True
        self._reader.length = left - n
        return n


def body_reader(environ: dict[str, Any] | None = None) -> IO[bytes]:
    """The current request's body, read with as few copies as the server allows."""
    env = request.environ if environ is None else environ
    stream = env.get("wsgi.input")
    sock = env.get("gunicorn.socket")
    if (
        Body is not None
        and isinstance(stream, Body)
        and isinstance(stream.reader, LengthReader)
        and isinstance(stream.reader.unreader, SocketUnreader)
        and isinstance(sock, socket.socket)
        and stream.reader.unreader.sock is sock
        and isinstance(getattr(stream.reader.unreader, "buf", None), io.BytesIO)
        and isinstance(getattr(stream, "buf", None), io.BytesIO)
    ):
        reader = stream.reader
        return _SocketBody(stream, reader, reader.unreader, sock)  # type: ignore[return-value]
    return request.stream if environ is None else get_input_stream(env)


def read_exactly(reader: IO[bytes], n: int) -> bytes:
    """``n`` bytes from ``reader`` (fewer only at its end), whatever its read sizes."""
    out = b""
    while len(out) < n:
        chunk = reader.read(n - len(out))
        if not chunk:
            break
        out += chunk
    return out

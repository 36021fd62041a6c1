"""The storage interface (对象存储接口), its errors, keys and the streaming intake.

Every backend implements :class:`Storage`. Objects are written by streaming: the bytes go
through :class:`Intake` in fixed-size chunks, which counts them, hashes them (SHA-256, on
the way in) and enforces the declared length, the size limit and the expected checksum.
A refused write leaves no object behind.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol

from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

from bidding.core.clock import now
from bidding.core.errors import (
    BadRequest,
    DomainError,
    ErrorCode,
    NotFound,
    PayloadTooLarge,
    RuleViolation,
    ServiceUnavailable,
)

#: Chunk size for reading and hashing streams (1 MiB).
CHUNK_SIZE = 1024 * 1024
DEFAULT_CONTENT_TYPE = "application/octet-stream"
MAX_KEY_LENGTH = 512

# ---------------------------------------------------------------------------------------
# errors


def _msg(text: Any) -> str:
    """Render a lazy message now (in a request it follows the user's locale).

    Outside a request (tasks, CLI) a locale selector that reads the request may fail;
    the message then falls back to its msgid, the Chinese text.
    """
    try:
        return str(text)
    except RuntimeError:
        args = getattr(text, "_args", None)
        return str(args[0]) if args else object.__repr__(text)


class StorageUnavailable(ServiceUnavailable):
    """The object store does not answer or refuses to work (HTTP 503)."""

    code = ErrorCode.STORAGE_UNAVAILABLE
    http_status = 503

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        super().__init__(message or _msg(_l("文件存储服务暂时不可用，请稍后重试。")), **kwargs)


class ObjectNotFound(NotFound):
    """No object under this key (HTTP 404)."""

    code = ErrorCode.OBJECT_NOT_FOUND

    def __init__(self, key: str, message: str | None = None) -> None:
        super().__init__(
            message or _msg(_l("所请求的文件不存在或已被删除。")), details={"key": key}
        )


class UploadIncomplete(BadRequest):
    """The stream ended (or the client went away) before the declared length (HTTP 400)."""

    code = ErrorCode.UPLOAD_INCOMPLETE


class UploadTooLarge(PayloadTooLarge):
    """More bytes than allowed or declared (HTTP 413)."""

    code = ErrorCode.UPLOAD_TOO_LARGE


class ChecksumMismatch(RuleViolation):
    """The SHA-256 of the received bytes differs from the expected one (HTTP 422)."""

    code = ErrorCode.CHECKSUM_MISMATCH


class InvalidObjectKey(BadRequest):
    """A key that is not a valid object name (HTTP 400)."""

    code = ErrorCode.INVALID_OBJECT_KEY


def upload_incomplete(received: int, expected: int | None) -> UploadIncomplete:
    return UploadIncomplete(
        _msg(_l("文件上传未完成（传输中断或数据不完整），请重新上传。")),
        details={"received": received, "expected": expected},
    )


def upload_too_large(limit: int, received: int | None = None) -> UploadTooLarge:
    details: dict[str, Any] = {"limit": limit}
    if received is not None:
        details["received"] = received
    return UploadTooLarge(_msg(_l("上传的文件超过允许的大小。")), details=details)


def checksum_mismatch(expected: str, actual: str) -> ChecksumMismatch:
    return ChecksumMismatch(
        _msg(_l("文件校验值（SHA-256）与声明的不一致，文件可能已损坏或被篡改，请重新上传。")),
        details={"expected_sha256": expected, "actual_sha256": actual},
    )


# ---------------------------------------------------------------------------------------
# keys

_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._=+-]*"
_KEY_RE = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT})*")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe object key, else raise :class:`InvalidObjectKey`.

    Keys are ``/``-separated segments of ASCII letters, digits and ``._=+-``; each segment
    starts with a letter or digit (so no ``.``/``..`` segments, no hidden names), no leading
    or trailing ``/``, no empty segments, no ``..`` anywhere, at most 512 characters.
    """
    if (
        not isinstance(key, str)
        or not key
        or len(key) > MAX_KEY_LENGTH
        or ".." in key
        or not _KEY_RE.fullmatch(key)
    ):
        raise InvalidObjectKey(
            _msg(_l("文件标识不合法。")), details={"key": key if isinstance(key, str) else None}
        )
    return key


def new_key(prefix: str) -> str:
    """A fresh, unguessable key under ``prefix``: ``<prefix>/<yyyy>/<mm>/<32 hex>``."""
    prefix = prefix.strip("/")
    if prefix:
        validate_key(prefix)
    stamp = now().strftime("%Y/%m")
    key = f"{prefix}/{stamp}/{uuid.uuid4().hex}" if prefix else f"{stamp}/{uuid.uuid4().hex}"
    return validate_key(key)


def normalise_sha256(value: str | None) -> str | None:
    """Lower-case hex SHA-256, or raise :class:`BadRequest` for anything else."""
    if value is None:
        return None
    lowered = value.strip().lower()
    if not _SHA256_RE.fullmatch(lowered):
        raise BadRequest(
            _msg(_l("SHA-256 校验值格式不正确（应为 64 位十六进制）。")),
            details={"sha256": value},
        )
    return lowered


# ---------------------------------------------------------------------------------------
# values


@dataclass(frozen=True)
class StoredObject:
    """What the store knows about one object (对象信息).

    ``sha256`` is always set on the result of :meth:`Storage.put` (computed on the way in);
    :meth:`Storage.stat` returns it when the backend recorded it (S3 objects uploaded in
    several parts without an expected checksum, or directly by a client, have ``None``:
    use :meth:`Storage.verify_object`).
    """

    key: str
    size: int
    sha256: str | None
    etag: str
    content_type: str = DEFAULT_CONTENT_TYPE
    last_modified: datetime | None = None


@dataclass(frozen=True)
class UploadedPart:
    """One part of a multipart upload (分片)."""

    part_number: int
    etag: str
    size: int = 0


class WritableStream(Protocol):
    def write(self, data: bytes, /) -> Any: ...


# ---------------------------------------------------------------------------------------
# streaming intake


class Intake:
    """Reads a stream into caller-owned buffers, hashing and checking as it goes.

    Call :meth:`fill` until it returns less than the buffer's size (end of stream), then
    :meth:`finish`, which raises if the total is short of ``length`` or the SHA-256 does
    not match. :meth:`fill` itself raises :class:`UploadTooLarge` as soon as more than
    ``max_size`` (or ``length``) bytes arrive, and :class:`UploadIncomplete` when reading
    fails (client disconnected).
    """

    def __init__(
        self,
        stream: IO[bytes] | BinaryIO | Any,
        *,
        length: int | None = None,
        max_size: int | None = None,
        expected_sha256: str | None = None,
    ) -> None:
        if length is not None and length < 0:
            raise ValueError("length must be >= 0")
        if max_size is not None and max_size < 0:
            raise ValueError("max_size must be >= 0")
        if length is not None and max_size is not None and length > max_size:
            raise upload_too_large(max_size, length)
        self.stream = stream
        self.length = length
        self.max_size = max_size
        self.expected_sha256 = normalise_sha256(expected_sha256)
        self.size = 0
        self._hash = hashlib.sha256()
        self._eof = False
        self._readinto = getattr(stream, "readinto", None)

    @property
    def limit(self) -> int | None:
        """The most bytes this intake accepts."""
        return self.length if self.length is not None else self.max_size

    def _read_into(self, view: memoryview) -> int:
        try:
            if self._readinto is not None:
                n = self._readinto(view)
                return int(n or 0)
            data = self.stream.read(len(view))
        except RequestEntityTooLarge as exc:
            raise upload_too_large(self.limit or self.size, None) from exc
        except (OSError, EOFError, ClientDisconnected) as exc:
            raise upload_incomplete(self.size, self.length) from exc
        if not data:
            return 0
        if len(data) > len(view):
            raise ValueError("stream.read() returned more bytes than asked for")
        view[: len(data)] = data
        return len(data)

    def fill(self, buffer: bytearray | memoryview) -> int:
        """Fill ``buffer`` from the stream; return the bytes read (short only at EOF)."""
        view = memoryview(buffer)
        filled = 0
        limit = self.limit
        while filled < len(view) and not self._eof:
            want = min(len(view) - filled, CHUNK_SIZE)
            if limit is not None:
                remaining = limit - self.size
                if remaining <= 0:
                    self._probe_end()
                    break
                want = min(want, remaining)
            n = self._read_into(view[filled : filled + want])
            if n == 0:
                self._eof = True
                break
            self._hash.update(view[filled : filled + n])
            filled += n
            self.size += n
        return filled

    def _probe_end(self) -> None:
        """At the limit: one more byte means the sender sent more than allowed."""
        probe = bytearray(1)
        if self._read_into(memoryview(probe)):
            limit = self.limit
            assert limit is not None
            raise upload_too_large(limit, self.size + 1)
        self._eof = True

    def chunks(self, size: int = CHUNK_SIZE) -> Iterator[memoryview]:
        """Iterate over the stream in chunks of ``size`` (one reused buffer)."""
        buffer = bytearray(size)
        view = memoryview(buffer)
        while True:
            n = self.fill(buffer)
            if n:
                yield view[:n]
            if n < size:
                return

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def finish(self) -> str:
        """Check the end state; return the SHA-256 hex digest of everything read."""
        # Callers stop at a short fill (EOF) or at the limit: nothing may wait beyond it.
        if not self._eof and self.limit is not None and self.size >= self.limit:
            self._probe_end()
        if self.length is not None and self.size != self.length:
            raise upload_incomplete(self.size, self.length)
        digest = self.sha256
        if self.expected_sha256 is not None and not hmac.compare_digest(
            digest, self.expected_sha256
        ):
            raise checksum_mismatch(self.expected_sha256, digest)
        return digest


# ---------------------------------------------------------------------------------------
# the interface


class Storage(ABC):
    """An object store: streaming put/get, stat, delete, presigned URLs (对象存储)."""

    #: Short backend name: ``"local"`` or ``"s3"``.
    name: str = ""

    @abstractmethod
    def put(
        self,
        key: str,
        stream: IO[bytes] | BinaryIO | Any,
        *,
        length: int | None = None,
        content_type: str = DEFAULT_CONTENT_TYPE,
        expected_sha256: str | None = None,
        max_size: int | None = None,
    ) -> StoredObject:
        """Stream ``stream`` into a new object under ``key``, all-or-nothing.

        Raises :class:`UploadIncomplete` (stream shorter than ``length`` or failing),
        :class:`UploadTooLarge` (over ``max_size`` or longer than ``length``),
        :class:`ChecksumMismatch` (``expected_sha256`` differs); none leaves an object.
        """

    @abstractmethod
    def open(self, key: str) -> IO[bytes]:
        """A streaming binary reader of the object (close it, or use ``with``)."""

    def open_sized(self, key: str) -> tuple[IO[bytes], int]:
        """:meth:`open` and the object's size, in one request where the backend can (the
        size of what the reader will yield: a GET's ``Content-Length``)."""
        size = self.stat(key).size
        return self.open(key), size

    @abstractmethod
    def stat(self, key: str) -> StoredObject:
        """Size, checksum and type of the object; :class:`ObjectNotFound` if absent."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object (no error if it does not exist)."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list_keys(self, prefix: str = "") -> list[str]:
        """Keys of the stored objects under ``prefix`` (for housekeeping and tests)."""

    @abstractmethod
    def check(self) -> None:
        """Raise :class:`StorageUnavailable` unless the backend works."""

    @abstractmethod
    def presigned_put_url(
        self,
        key: str,
        expires: int,
        *,
        content_type: str | None = None,
        max_size: int | None = None,
        sha256: str | None = None,
    ) -> str:
        """A URL a client may ``PUT`` the object's bytes to for ``expires`` seconds.

        After a direct upload the platform must call :meth:`verify_object`. ``max_size`` is
        enforced while receiving by the local backend; S3 enforces it through
        :meth:`verify_object` afterwards.

        ``sha256`` (hex) binds the URL to those bytes: the client sends the
        ``x-amz-checksum-sha256`` header (``sigv4.checksum_sha256_header``), which
        an S3 server must receive unchanged (it is signed into the URL) and checks
        against the body; the local backend checks the body's SHA-256 itself. Any other
        body is refused and the stored object stays as it was, so replaying the URL can
        only write the declared bytes again.
        """

    @abstractmethod
    def presigned_get_url(self, key: str, expires: int, filename: str | None = None) -> str:
        """A URL that downloads the object for ``expires`` seconds (as ``filename``)."""

    # -- multipart uploads by clients (large sealed bids, resumable) --------------------

    @abstractmethod
    def create_multipart_upload(self, key: str, *, content_type: str = DEFAULT_CONTENT_TYPE) -> str:
        """Start a multipart upload; returns its upload id."""

    @abstractmethod
    def presigned_part_url(self, key: str, upload_id: str, part_number: int, expires: int) -> str:
        """A URL the client ``PUT``s part ``part_number`` (1-10000) to; the response's
        ``ETag`` header names the part for :meth:`complete_multipart_upload`."""

    @abstractmethod
    def list_parts(self, key: str, upload_id: str) -> list[UploadedPart]:
        """Parts received so far (a resuming client skips them)."""

    @abstractmethod
    def complete_multipart_upload(
        self, key: str, upload_id: str, parts: list[UploadedPart]
    ) -> StoredObject:
        """Join the parts into the object (then call :meth:`verify_object`)."""

    @abstractmethod
    def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        """Drop the upload and its parts (no error if already gone)."""

    # -- shared behaviour ---------------------------------------------------------------

    def get(self, key: str, dst: str | Path | WritableStream) -> StoredObject:
        """Stream the object into ``dst`` (a path or a writable binary stream).

        Returns the object's info with ``size`` and ``sha256`` of the bytes delivered.
        """
        hasher = hashlib.sha256()
        size = 0
        info = self.stat(key)
        with self.open(key) as reader:
            if isinstance(dst, str | Path):
                out: Any = open(dst, "wb")  # noqa: SIM115 - closed below
                close = True
            else:
                out, close = dst, False
            try:
                while chunk := reader.read(CHUNK_SIZE):
                    hasher.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            finally:
                if close:
                    out.close()
        return StoredObject(
            key=key,
            size=size,
            sha256=hasher.hexdigest(),
            etag=info.etag,
            content_type=info.content_type,
            last_modified=info.last_modified,
        )

    def read_bytes(self, key: str) -> bytes:
        """The whole object in memory: only for small objects (forms, receipts)."""
        buffer = io.BytesIO()
        self.get(key, buffer)
        return buffer.getvalue()

    def put_bytes(
        self, key: str, data: bytes, *, content_type: str = DEFAULT_CONTENT_TYPE
    ) -> StoredObject:
        """Store a small in-memory object."""
        return self.put(key, io.BytesIO(data), length=len(data), content_type=content_type)

    def hash_object(self, key: str) -> tuple[int, str]:
        """Stream the object back and return (size, SHA-256 hex)."""
        hasher = hashlib.sha256()
        size = 0
        with self.open(key) as reader:
            while chunk := reader.read(CHUNK_SIZE):
                hasher.update(chunk)
                size += len(chunk)
        return size, hasher.hexdigest()

    def verify_object(self, key: str, expected_size: int, expected_sha256: str) -> StoredObject:
        """Check an object a client uploaded directly; delete it unless it matches.

        Compares the stored size, then recomputes the SHA-256 by streaming the object back.
        Raises :class:`UploadIncomplete` (too short), :class:`UploadTooLarge` (too long)
        or :class:`ChecksumMismatch`, after deleting the object; :class:`ObjectNotFound`
        if nothing was uploaded.
        """
        expected = normalise_sha256(expected_sha256)
        assert expected is not None
        info = self.stat(key)
        error: DomainError | None = None
        if info.size < expected_size:
            error = upload_incomplete(info.size, expected_size)
        elif info.size > expected_size:
            error = upload_too_large(expected_size, info.size)
        else:
            size, digest = self.hash_object(key)
            if size != expected_size:
                error = upload_incomplete(size, expected_size)
            elif not hmac.compare_digest(digest, expected):
                error = checksum_mismatch(expected, digest)
            else:
                self._record_sha256(key, digest)
                return StoredObject(
                    key=key,
                    size=size,
                    sha256=digest,
                    etag=info.etag,
                    content_type=info.content_type,
                    last_modified=info.last_modified,
                )
        self.delete(key)
        raise error

    def _record_sha256(self, key: str, sha256: str) -> None:  # noqa: B027 - optional hook
        """Remember a verified checksum where the backend can (default: nothing)."""

"""The S3 backend (MinIO) through the ``minio`` client (S3 对象存储).

``SUNBID_STORAGE_URL=s3://KEY:SECRET@host:port/bucket`` (plain HTTP; also ``s3+http://``)
or ``s3+https://…`` (TLS). The bucket is created if missing.

Writes of a known length (up to S3's 5 GiB) whose SHA-256 is given, or that are larger
than a part, go as one ``PUT`` streamed as the bytes arrive, its last byte held back until
the length, size limit and SHA-256 checks passed: a refused or broken upload closes the
connection one byte short, and the server stores nothing. Other writes go through a single
reused part buffer (:data:`DEFAULT_PART_SIZE`): an object that fits in one part is sent
with one ``PUT`` after all checks passed; a larger one (length unknown) as a multipart
upload that is *completed* only after the whole stream was read and checked, and
*aborted* on any error. Either way a refused upload never becomes a visible object, and
peak memory is one buffer (plus the HTTP client's small buffers), whatever the size.

The SHA-256 computed on the way in is returned by :meth:`S3Storage.put`; it is also kept
as object metadata (``x-amz-meta-sha256``) when it is known before the upload starts
(one-part objects, or ``expected_sha256`` given), so :meth:`S3Storage.stat` can report it.

This module uses the ``minio`` client's multipart primitives (``_create_multipart_upload``,
``_upload_part``, ``_complete_multipart_upload``, ``_abort_multipart_upload``,
``_list_parts``) and its connection pool (``_http``, for the streamed ``PUT``, signed by
:mod:`bidding.core.storage.sigv4`), which are not public API: ``minio`` is pinned below 8
in pyproject.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import logging
import os
import re
import weakref
from collections.abc import Iterator
from datetime import UTC, timedelta
from typing import IO, Any, BinaryIO, NoReturn, cast
from urllib.parse import quote, unquote, urlsplit

import urllib3
from flask_babel import lazy_gettext as _l
from minio import Minio
from minio.datatypes import Part
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError

from bidding.core.storage import sigv4
from bidding.core.storage.base import (
    CHUNK_SIZE,
    DEFAULT_CONTENT_TYPE,
    Intake,
    ObjectNotFound,
    Storage,
    StorageUnavailable,
    StoredObject,
    UploadedPart,
    _msg,
    normalise_sha256,
    validate_key,
)
from bidding.core.storage.local import _check_part_number

log = logging.getLogger(__name__)

#: Part size of streamed uploads: the memory one upload holds at a time.
DEFAULT_PART_SIZE = 16 * 1024 * 1024
MIN_PART_SIZE = 5 * 1024 * 1024
SHA256_META = "x-amz-meta-sha256"
_MISSING_OBJECT = {"NoSuchKey", "NoSuchObject", "NoSuchVersion"}
_MAX_PRESIGN = 7 * 24 * 3600
#: Read buffer of :meth:`S3Storage.open_sized` (large sequential reads bypass it).
SEQUENTIAL_BUFFER = 64 * 1024
#: Connections kept open to the store per process: one per gunicorn thread (deploy/
#: gunicorn.conf.py runs 64), so a rush of concurrent uploads and read-backs reuses them
#: instead of opening and discarding one per request (urllib3 warns on each discard).
DEFAULT_POOL_SIZE = 64
#: A write of known length up to this goes as one streamed ``PUT`` (S3's own limit).
MAX_SINGLE_PUT = 5 * 1024**3
#: The piece a streamed ``PUT`` reads and sends at a time.
STREAM_BUFFER = 1024 * 1024
#: Validity of the URL a streamed ``PUT`` signs for itself (checked when it starts).
STREAM_PUT_EXPIRES = 900


class S3Storage(Storage):
    """Objects in one bucket of an S3-compatible store (MinIO in production)."""

    name = "s3"

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        *,
        secure: bool = False,
        region: str = "us-east-1",
        part_size: int = DEFAULT_PART_SIZE,
        connect_timeout: float = 5.0,
        read_timeout: float = 300.0,
        retries: int = 2,
        create_bucket: bool = True,
        pool_size: int = DEFAULT_POOL_SIZE,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError("part_size must be at least 5 MiB")
        self.endpoint = endpoint
        self.bucket = bucket
        self.region = region
        self._credentials = (access_key, secret_key)
        self.secure = secure
        self.part_size = part_size
        self.create_bucket = create_bucket
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            maxsize=pool_size,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or _certifi_where(),
            retries=urllib3.Retry(
                total=retries, backoff_factor=0.1, status_forcelist=[500, 502, 503, 504]
            ),
        )
        self.client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=http,
        )
        self._bucket_ready = False
        if create_bucket:
            try:
                self._ensure_bucket()
            except StorageUnavailable as exc:
                # Start anyway: writes retry, check() and /healthz report it.
                log.warning("object store not reachable at start-up: %s", exc.details)
        # Connections are never shared across a fork (gunicorn, Celery prefork): drop the
        # ones opened at start-up, and the pool in every forked child.
        http.clear()
        pool = weakref.ref(http)
        os.register_at_fork(after_in_child=lambda: _clear_pool(pool))

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> S3Storage:
        """``s3://KEY:SECRET@host:port/bucket`` (HTTP) or ``s3+https://…`` (TLS)."""
        parts = urlsplit(url)
        if parts.scheme not in {"s3", "s3+http", "s3+https"}:
            raise ValueError(f"not an s3:// storage URL: {parts.scheme!r}")
        bucket = parts.path.strip("/")
        if not parts.hostname or not bucket or "/" in bucket:
            raise ValueError("s3 storage URL needs host and a bucket: s3://K:S@host:port/bucket")
        endpoint = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        return cls(
            endpoint,
            unquote(parts.username or ""),
            unquote(parts.password or ""),
            bucket,
            secure=parts.scheme == "s3+https",
            **kwargs,
        )

    def __repr__(self) -> str:
        scheme = "https" if self.secure else "http"
        return f"S3Storage({scheme}://{self.endpoint}/{self.bucket})"

    # -- errors ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, key: str | None = None, *, upload: bool = False) -> Iterator[None]:
        """Map client and transport failures to domain errors (never a bare 500)."""
        try:
            yield
        except S3Error as exc:
            if key is not None and exc.code in _MISSING_OBJECT:
                raise ObjectNotFound(key) from None
            if key is not None and upload and exc.code == "NoSuchUpload":
                raise ObjectNotFound(key, _msg(_l("分片上传不存在或已结束。"))) from None
            self._unavailable(exc, exc.code)
        except (ServerError, InvalidResponseError, MinioException) as exc:
            self._unavailable(exc, type(exc).__name__)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            self._unavailable(exc, type(exc).__name__)

    def _unavailable(self, exc: BaseException, reason: str | None) -> NoReturn:
        log.warning("object store %r failed: %s", self, exc)
        raise StorageUnavailable(details={"reason": reason or "error"}) from exc

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        with self._errors():
            if not self.client.bucket_exists(self.bucket):
                if not self.create_bucket:
                    raise StorageUnavailable(details={"reason": "NoSuchBucket"})
                try:
                    self.client.make_bucket(self.bucket)
                except S3Error as exc:
                    if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                        raise
        self._bucket_ready = True

    # -- writes ----------------------------------------------------------------------------

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
        validate_key(key)
        intake = Intake(stream, length=length, max_size=max_size, expected_sha256=expected_sha256)
        self._ensure_bucket()
        content_type = content_type or DEFAULT_CONTENT_TYPE
        if (
            length is not None
            and 0 < length <= MAX_SINGLE_PUT
            and (intake.expected_sha256 is not None or length > self.part_size)
        ):
            # streamed: the SHA-256 metadata is known up front, or (above a part) would
            # not be anyway; a small object of unknown hash is buffered, and stored with it
            return self._put_streaming(key, intake, length, content_type)
        size = self.part_size if length is None else min(self.part_size, length)
        buffer = bytearray(size)
        view = memoryview(buffer)
        n = intake.fill(buffer)
        if n < len(buffer) or self._at_limit(intake):
            # One part: every check passes before a byte is sent.
            sha256 = intake.finish()
            headers: dict[str, str | list[str] | tuple[str]] = {
                "Content-Type": content_type,
                SHA256_META: sha256,
            }
            with self._errors(key):
                result = self.client._put_object(
                    self.bucket,
                    key,
                    _body(view[:n]),
                    headers=headers,
                )
            return StoredObject(
                key=key,
                size=n,
                sha256=sha256,
                etag=str(result.etag or ""),
                content_type=content_type,
            )
        return self._put_multipart(key, intake, buffer, n, content_type)

    def _put_streaming(
        self, key: str, intake: Intake, length: int, content_type: str
    ) -> StoredObject:
        """One ``PUT`` of a known length, sent as it is read, its last byte held back.

        The body goes out in :data:`STREAM_BUFFER` pieces while it arrives (one reused
        buffer), but the final byte only after every check passed (length, size limit,
        SHA-256, and whatever the stream itself checks as it is read). A check that fails
        closes the connection one byte short of ``Content-Length``: the server drops an
        incomplete request body, so nothing is stored. Cheaper than a multipart upload for
        both sides (no parts to assemble), and the payload is not hashed a second time for
        the signature (``UNSIGNED-PAYLOAD``; the SHA-256 checked here is signed as
        ``x-amz-checksum-sha256`` when it is known in advance, so MinIO and AWS verify it
        too)."""
        headers = {"content-type": content_type}
        if intake.expected_sha256:
            headers[SHA256_META] = intake.expected_sha256
            headers.update(sigv4.checksum_sha256_header(intake.expected_sha256))
        url = self._presign_put(key, STREAM_PUT_EXPIRES, headers)
        view = memoryview(bytearray(min(STREAM_BUFFER, length)))
        digest: list[str] = []

        def body() -> Iterator[memoryview]:
            while True:
                n = intake.fill(view)
                if intake.size >= length or n < len(view):
                    break
                yield view[:n]
            if n > 1:
                yield view[: n - 1]
            digest.append(intake.finish())  # raises: nothing past this point was sent
            yield view[n - 1 : n]

        http = self.client._http
        with self._errors(key):
            response = http.urlopen(
                "PUT",
                url,
                body=body(),
                headers={**headers, "content-length": str(length)},
                chunked=False,
                retries=False,
                redirect=False,
                preload_content=True,
            )
        if response.status != 200:
            self._refused(key, response)
        assert digest, "the body was sent whole without passing its checks"
        return StoredObject(
            key=key,
            size=length,
            sha256=digest[0],
            etag=str(response.headers.get("ETag") or "").strip('"'),
            content_type=content_type,
        )

    def _refused(self, key: str, response: Any) -> NoReturn:
        """A non-200 answer to :meth:`_put_streaming`: the store's error code, as 503."""
        code = None
        with contextlib.suppress(Exception):
            match = re.search(rb"<Code>([^<]{1,64})</Code>", response.data or b"")
            code = match.group(1).decode("ascii", "replace") if match else None
        self._unavailable(
            RuntimeError(f"PUT {key}: HTTP {response.status} {code or ''}".rstrip()),
            code or f"HTTP {response.status}",
        )

    @staticmethod
    def _at_limit(intake: Intake) -> bool:
        limit = intake.limit
        return limit is not None and intake.size >= limit

    def _put_multipart(
        self, key: str, intake: Intake, buffer: bytearray, first: int, content_type: str
    ) -> StoredObject:
        view = memoryview(buffer)
        headers: dict[str, str | list[str] | tuple[str]]
        headers = {"Content-Type": content_type}
        if intake.expected_sha256:
            headers[SHA256_META] = intake.expected_sha256
        with self._errors(key):
            upload_id = self.client._create_multipart_upload(self.bucket, key, headers)
        parts: list[Part] = []
        try:
            n = first
            while n:
                number = len(parts) + 1
                with self._errors(key):
                    etag = self.client._upload_part(
                        self.bucket,
                        key,
                        _body(view[:n]),
                        None,
                        upload_id,
                        number,
                    )
                parts.append(Part(number, etag))
                if n < len(buffer) or self._at_limit(intake):
                    break
                n = intake.fill(buffer)
            # All checks before the object becomes visible.
            sha256 = intake.finish()
            with self._errors(key):
                result = self.client._complete_multipart_upload(self.bucket, key, upload_id, parts)
        except BaseException:
            self._abort_quietly(key, upload_id)
            raise
        return StoredObject(
            key=key,
            size=intake.size,
            sha256=sha256,
            etag=str(result.etag or "").strip('"'),
            content_type=content_type,
        )

    def _abort_quietly(self, key: str, upload_id: str) -> None:
        try:
            self.client._abort_multipart_upload(self.bucket, key, upload_id)
        except Exception as exc:  # best effort; the store expires unfinished uploads
            log.warning("could not abort multipart upload %s of %s: %s", upload_id, key, exc)

    def delete(self, key: str) -> None:
        validate_key(key)
        with self._errors():
            self.client.remove_object(self.bucket, key)

    # -- reads -----------------------------------------------------------------------------

    def _get(self, key: str, buffer_size: int) -> tuple[io.BufferedReader, Any]:
        validate_key(key)
        with self._errors(key):
            response = self.client.get_object(self.bucket, key)
        return io.BufferedReader(_ResponseReader(response, self), buffer_size), response

    def open(self, key: str) -> IO[bytes]:
        return self._get(key, CHUNK_SIZE)[0]

    def open_sized(self, key: str) -> tuple[IO[bytes], int]:
        # for large sequential reads: a small buffer, so reads of a buffer's size or more
        # go to the socket without passing through it
        reader, response = self._get(key, SEQUENTIAL_BUFFER)
        try:
            return reader, int(response.headers["Content-Length"])
        except (KeyError, TypeError, ValueError):  # a chunked answer: ask separately
            reader.close()
            return super().open_sized(key)

    def stat(self, key: str) -> StoredObject:
        validate_key(key)
        with self._errors(key):
            st = self.client.stat_object(self.bucket, key)
        sha = (st.metadata or {}).get(SHA256_META) if st.metadata is not None else None
        modified = st.last_modified
        if modified is not None and modified.tzinfo is None:
            modified = modified.replace(tzinfo=UTC)
        return StoredObject(
            key=key,
            size=int(st.size or 0),
            sha256=str(sha).lower() if sha else None,
            etag=str(st.etag or "").strip('"'),
            content_type=st.content_type or DEFAULT_CONTENT_TYPE,
            last_modified=modified,
        )

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except ObjectNotFound:
            return False
        return True

    def list_keys(self, prefix: str = "") -> list[str]:
        with self._errors():
            return sorted(
                str(o.object_name)
                for o in self.client.list_objects(self.bucket, prefix=prefix, recursive=True)
            )

    def list_uploads(self) -> list[tuple[str, str]]:
        """Unfinished multipart uploads as (key, upload id) (for housekeeping and tests)."""
        with self._errors():
            result = self.client._list_multipart_uploads(self.bucket)
        return [(str(u.object_name), str(u.upload_id)) for u in result.uploads]

    def check(self) -> None:
        self._bucket_ready = False
        self._ensure_bucket()

    # -- presigned URLs ------------------------------------------------------------------

    def _presign(
        self, method: str, key: str, expires: int, query: dict[str, str] | None = None
    ) -> str:
        validate_key(key)
        if not 1 <= expires <= _MAX_PRESIGN:
            raise ValueError("expires must be between 1 second and 7 days")
        with self._errors():
            return self.client.get_presigned_url(
                method,
                self.bucket,
                key,
                expires=timedelta(seconds=expires),
                extra_query_params=query,  # type: ignore[arg-type]
            )

    def presigned_put_url(
        self,
        key: str,
        expires: int,
        *,
        content_type: str | None = None,
        max_size: int | None = None,
        sha256: str | None = None,
    ) -> str:
        # S3 cannot bound a presigned PUT's size: verify_object() checks it afterwards.
        if sha256 is None:
            return self._presign("PUT", key, expires)
        validate_key(key)
        if not 1 <= expires <= _MAX_PRESIGN:
            raise ValueError("expires must be between 1 second and 7 days")
        digest = normalise_sha256(sha256)
        assert digest is not None
        return self._presign_put(key, expires, sigv4.checksum_sha256_header(digest))

    def _presign_put(self, key: str, expires: int, headers: dict[str, str]) -> str:
        """A ``PUT`` URL that signs ``headers`` too (:mod:`~bidding.core.storage.sigv4`)."""
        access_key, secret_key = self._credentials
        return sigv4.presign(
            method="PUT",
            scheme="https" if self.secure else "http",
            host=self.endpoint,
            path=f"/{self.bucket}/{key}",
            access_key=access_key,
            secret_key=secret_key,
            region=self.region,
            expires=expires,
            headers=headers,
        )

    def presigned_get_url(self, key: str, expires: int, filename: str | None = None) -> str:
        query = None
        if filename:
            query = {"response-content-disposition": content_disposition(filename)}
        return self._presign("GET", key, expires, query)

    # -- multipart by clients ------------------------------------------------------------

    def create_multipart_upload(self, key: str, *, content_type: str = DEFAULT_CONTENT_TYPE) -> str:
        validate_key(key)
        self._ensure_bucket()
        with self._errors(key):
            return self.client._create_multipart_upload(
                self.bucket, key, {"Content-Type": content_type or DEFAULT_CONTENT_TYPE}
            )

    def presigned_part_url(self, key: str, upload_id: str, part_number: int, expires: int) -> str:
        _check_part_number(part_number)
        return self._presign(
            "PUT", key, expires, {"partNumber": str(part_number), "uploadId": upload_id}
        )

    def list_parts(self, key: str, upload_id: str) -> list[UploadedPart]:
        validate_key(key)
        parts: list[UploadedPart] = []
        marker: str | None = None
        while True:
            with self._errors(key, upload=True):
                result = self.client._list_parts(
                    self.bucket, key, upload_id, max_parts=1000, part_number_marker=marker
                )
            parts.extend(
                UploadedPart(
                    part_number=p.part_number, etag=p.etag.strip('"'), size=int(p.size or 0)
                )
                for p in result.parts
            )
            if not result.is_truncated or not result.next_part_number_marker:
                return parts
            marker = result.next_part_number_marker

    def complete_multipart_upload(
        self, key: str, upload_id: str, parts: list[UploadedPart]
    ) -> StoredObject:
        validate_key(key)
        with self._errors(key, upload=True):
            self.client._complete_multipart_upload(
                self.bucket,
                key,
                upload_id,
                [Part(p.part_number, p.etag.strip('"')) for p in parts],
            )
        return self.stat(key)

    def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        validate_key(key)
        with contextlib.suppress(ObjectNotFound), self._errors(key, upload=True):
            self.client._abort_multipart_upload(self.bucket, key, upload_id)


class _ResponseReader(io.RawIOBase):
    """A raw reader over a streaming GET response; transport errors become 503.

    Reads go straight into the caller's buffer where they can: urllib3's ``readinto``
    reads a new bytes object and copies it (two copies of every byte, and an allocation
    per call), so an identity-encoded body is read through the ``http.client`` response
    underneath it, the socket filling the caller's buffer. Its one gap — a connection
    that ends before ``Content-Length`` reads as a clean end — is closed here: an early
    end is a transport failure (503), never a short object."""

    def __init__(self, response: Any, storage: S3Storage) -> None:
        self._response = response
        self._storage = storage
        raw = getattr(response, "_fp", None)
        encoding = (response.headers.get("Content-Encoding") or "identity").lower()
        direct = isinstance(raw, http.client.HTTPResponse) and encoding == "identity"
        self._raw: http.client.HTTPResponse | None = raw if direct else None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            raw = self._raw
            if raw is None:
                return int(self._response.readinto(buffer))
            n = raw.readinto(buffer)
            if n == 0 and len(buffer) and raw.length:  # closed before Content-Length
                raise http.client.IncompleteRead(b"", raw.length)
            return n
        except (urllib3.exceptions.HTTPError, OSError, http.client.HTTPException) as exc:
            self._storage._unavailable(exc, type(exc).__name__)

    def close(self) -> None:
        if not self.closed:
            try:
                self._response.close()
                self._response.release_conn()
            finally:
                super().close()


def _clear_pool(pool: weakref.ReferenceType[urllib3.PoolManager]) -> None:
    manager = pool()
    if manager is not None:
        manager.clear()


def _body(view: memoryview) -> bytes:
    """A part buffer for the client: sent as is (urllib3 takes any buffer), never copied."""
    return cast(bytes, view)


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback and the RFC 5987 UTF-8 name (Chinese names)."""
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "").replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _certifi_where() -> str | None:
    try:
        import certifi
    except ImportError:  # pragma: no cover
        return None
    return str(certifi.where())

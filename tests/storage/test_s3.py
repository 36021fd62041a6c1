"""The S3 backend against a real S3 server (moto subprocess): presigned URLs, client-driven
multipart uploads, and a store that is down."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import requests
import urllib3

from bidding.core.errors import ErrorCode
from bidding.core.storage import (
    ChecksumMismatch,
    ObjectNotFound,
    S3Storage,
    StorageUnavailable,
    UploadedPart,
    build_storage,
)
from tests.storage.conftest import SMALL_PART, leftovers, sha256

pytestmark = pytest.mark.integration


def test_from_url() -> None:
    s = S3Storage.from_url(
        "s3+https://AK%2Fx:S%40cret@minio.example:9443/sealed-bids", create_bucket=False
    )
    assert (s.endpoint, s.bucket, s.secure) == ("minio.example:9443", "sealed-bids", True)
    assert "https://minio.example:9443/sealed-bids" in repr(s)
    plain = S3Storage.from_url("s3+http://a:b@minio:9000/bkt", create_bucket=False)
    assert plain.secure is False
    assert isinstance(build_storage("s3://a:b@minio:9000/bkt"), S3Storage)
    for bad in ("s3://a:b@host:9000/", "s3://a:b@host:9000/bucket/sub", "http://h/b"):
        with pytest.raises(ValueError):
            S3Storage.from_url(bad, create_bucket=False)


def test_bucket_is_created_on_init(s3_storage_url: str) -> None:
    storage = S3Storage.from_url(s3_storage_url)
    assert storage.client.bucket_exists(storage.bucket)
    storage.check()
    S3Storage.from_url(s3_storage_url)  # again: the bucket already exists


def test_presigned_put_and_get(s3_storage: S3Storage) -> None:
    data = os.urandom(70_000)
    url = s3_storage.presigned_put_url("direct/bid.enc", 300)
    r = requests.put(url, data=data, timeout=10)
    assert r.status_code == 200, r.text
    verified = s3_storage.verify_object("direct/bid.enc", len(data), sha256(data))
    assert verified.sha256 == sha256(data)

    got = requests.get(s3_storage.presigned_get_url("direct/bid.enc", 300), timeout=10)
    assert got.status_code == 200
    assert got.content == data

    named = requests.get(
        s3_storage.presigned_get_url("direct/bid.enc", 300, filename="投标文件 第1包.enc"),
        timeout=10,
    )
    assert named.content == data
    disposition = named.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "投标文件 第1包.enc" in unquote(disposition.split("filename*=UTF-8''")[1])


def test_presigned_urls_carry_expiry_and_signature(s3_storage: S3Storage) -> None:
    # moto does not enforce query-string signatures or their expiry (MinIO does), so this
    # checks what the platform controls: what is signed, and for how long.
    query = parse_qs(urlsplit(s3_storage.presigned_get_url("direct/x", 90)).query)
    assert query["X-Amz-Expires"] == ["90"]
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Credential"][0].startswith("testing/")
    assert len(query["X-Amz-Signature"][0]) == 64
    part = parse_qs(urlsplit(s3_storage.presigned_part_url("direct/x", "UPLOAD", 7, 600)).query)
    assert (part["partNumber"], part["uploadId"], part["X-Amz-Expires"]) == (
        ["7"],
        ["UPLOAD"],
        ["600"],
    )
    for bad in (0, 7 * 24 * 3600 + 1):
        with pytest.raises(ValueError):
            s3_storage.presigned_get_url("direct/x", bad)


def test_direct_upload_that_does_not_match_is_deleted(s3_storage: S3Storage) -> None:
    data = os.urandom(10_000)
    url = s3_storage.presigned_put_url("direct/bad", 300)
    assert requests.put(url, data=data[:-1], timeout=10).status_code == 200
    with pytest.raises(Exception) as err:
        s3_storage.verify_object("direct/bad", len(data), sha256(data))
    assert getattr(err.value, "code", None) == ErrorCode.UPLOAD_INCOMPLETE
    assert not s3_storage.exists("direct/bad")

    assert requests.put(url, data=data[::-1], timeout=10).status_code == 200
    with pytest.raises(ChecksumMismatch):
        s3_storage.verify_object("direct/bad", len(data), sha256(data))
    assert leftovers(s3_storage) == []


def test_presigned_multipart_upload_resumes(s3_storage: S3Storage) -> None:
    """A bidder's client uploads parts straight to the store, is interrupted, resumes."""
    parts = [os.urandom(SMALL_PART), os.urandom(SMALL_PART), os.urandom(4321)]
    whole = b"".join(parts)
    key = "bids/large.enc"
    upload_id = s3_storage.create_multipart_upload(key)

    def send(number: int) -> str:
        url = s3_storage.presigned_part_url(key, upload_id, number, 600)
        r = requests.put(url, data=parts[number - 1], timeout=30)
        assert r.status_code == 200, r.text
        return str(r.headers["ETag"])

    send(1)
    # ...connection lost; the client asks which parts arrived and sends the rest.
    done = s3_storage.list_parts(key, upload_id)
    assert [(p.part_number, p.size) for p in done] == [(1, SMALL_PART)]
    etags = {p.part_number: p.etag for p in done}
    etags[2] = send(2)
    etags[3] = send(3)
    assert not s3_storage.exists(key)
    s3_storage.complete_multipart_upload(
        key, upload_id, [UploadedPart(n, etags[n]) for n in (1, 2, 3)]
    )
    info = s3_storage.verify_object(key, len(whole), sha256(whole))
    assert info.size == len(whole)
    assert leftovers(s3_storage) == [key]
    with pytest.raises(ObjectNotFound):
        s3_storage.list_parts(key, upload_id)  # the upload is finished


def test_store_failing_mid_upload_aborts_the_multipart_upload(
    s3_storage: S3Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = s3_storage.client._upload_part
    calls: list[int] = []

    def flaky(*args: Any) -> str:
        calls.append(args[5])
        if args[5] == 2:
            raise urllib3.exceptions.ProtocolError("connection reset by peer")
        return real(*args)

    monkeypatch.setattr(s3_storage.client, "_upload_part", flaky)
    with pytest.raises(StorageUnavailable) as err:
        s3_storage.put("r/x", io.BytesIO(os.urandom(3 * SMALL_PART)))
    assert err.value.code == ErrorCode.STORAGE_UNAVAILABLE
    assert calls == [1, 2]
    assert leftovers(s3_storage) == []


# -- the store is down -----------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def down_storage() -> S3Storage:
    started = time.monotonic()
    storage = S3Storage.from_url(f"s3://testing:testing@127.0.0.1:{_closed_port()}/bucket-down")
    assert time.monotonic() - started < 5  # the app still starts, quickly
    return storage


def test_down_store_raises_storage_unavailable(down_storage: S3Storage) -> None:
    calls: list[Callable[[], object]] = [
        down_storage.check,
        lambda: down_storage.put("a/b", io.BytesIO(b"x"), length=1),
        lambda: down_storage.put("a/b", io.BytesIO(os.urandom(SMALL_PART + 1))),
        lambda: down_storage.stat("a/b"),
        lambda: down_storage.open("a/b"),
        lambda: down_storage.get("a/b", io.BytesIO()),
        lambda: down_storage.exists("a/b"),
        lambda: down_storage.delete("a/b"),
        lambda: down_storage.list_keys(),
        lambda: down_storage.create_multipart_upload("a/b"),
        lambda: down_storage.verify_object("a/b", 1, sha256(b"x")),
    ]
    for call in calls:
        started = time.monotonic()
        with pytest.raises(StorageUnavailable) as err:
            call()
        assert err.value.code == ErrorCode.STORAGE_UNAVAILABLE
        assert err.value.http_status == 503
        assert time.monotonic() - started < 5


def test_presigning_needs_no_server(down_storage: S3Storage) -> None:
    assert down_storage.presigned_get_url("a/b", 60).startswith("http://127.0.0.1:")


def test_forked_child_uses_its_own_connections(
    s3_storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker forked after start-up (gunicorn, Celery prefork) must not share sockets:
    the pool is emptied at start-up and by an after-fork hook (called here directly rather
    than by forking a multi-threaded test process)."""
    hooks: list[Callable[[], object]] = []
    monkeypatch.setattr(os, "register_at_fork", lambda after_in_child: hooks.append(after_in_child))
    storage = S3Storage.from_url(s3_storage_url)
    assert len(storage.client._http.pools) == 0  # the start-up connection is gone
    storage.put_bytes("fork/x", b"parent")
    assert len(storage.client._http.pools) == 1
    assert len(hooks) == 1
    hooks[0]()  # what a forked child runs
    assert len(storage.client._http.pools) == 0
    assert storage.read_bytes("fork/x") == b"parent"


class _CuttingProxy:
    """A TCP relay in front of the S3 server that closes a connection once ``limit`` bytes
    of the server's answer have passed: a store dying in the middle of a GET's body."""

    def __init__(self, upstream: str, limit: int) -> None:
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.limit = limit
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._pipe, args=(client, server, None), daemon=True).start()
            threading.Thread(
                target=self._pipe, args=(server, client, self.limit), daemon=True
            ).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, limit: int | None) -> None:
        passed = 0
        try:
            while limit is None or passed < limit:
                data = src.recv(65536 if limit is None else min(65536, limit - passed))
                if not data:
                    break
                dst.sendall(data)
                passed += len(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.listener.close()


def test_a_get_cut_short_is_a_store_failure_not_a_short_object(
    s3_storage: S3Storage, s3_storage_url: str
) -> None:
    """The direct read path must not take a connection closed before Content-Length for
    the end of the object (a bid would then be refused as truncated)."""
    data = os.urandom(3 * 1024 * 1024)
    s3_storage.put_bytes("cut/x", data)
    parts = urlsplit(s3_storage_url)
    proxy = _CuttingProxy(f"{parts.hostname}:{parts.port}", limit=1024 * 1024)
    try:
        cut_url = s3_storage_url.replace(
            f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}"
        )
        cut = S3Storage.from_url(cut_url)
        assert cut.stat("cut/x").size == len(data)  # short answers pass whole
        for read in (
            lambda: cut.open("cut/x").read(),
            lambda: cut.open_sized("cut/x")[0].read(),
            lambda: cut.read_bytes("cut/x"),
        ):
            with pytest.raises(StorageUnavailable) as err:
                read()
            assert err.value.http_status == 503
        reader, size = s3_storage.open_sized("cut/x")  # the same object, read whole
        with reader:
            assert size == len(data) and reader.read() == data
    finally:
        proxy.close()


def test_concurrent_writes_reuse_pooled_connections(
    s3_storage: S3Storage, caplog: pytest.LogCaptureFixture
) -> None:
    """As many concurrent streamed writes as a gunicorn worker has threads keep their
    connections: none is opened and discarded for want of room in the pool."""
    from concurrent.futures import ThreadPoolExecutor

    data = os.urandom(200_000)
    digest = sha256(data)

    def put(i: int) -> int:
        return s3_storage.put(
            f"pool/{i}", io.BytesIO(data), length=len(data), expected_sha256=digest
        ).size

    with (
        caplog.at_level("WARNING", logger="urllib3.connectionpool"),
        ThreadPoolExecutor(32) as pool,
    ):
        sizes = list(pool.map(put, range(96)))
    assert sizes == [len(data)] * 96
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]

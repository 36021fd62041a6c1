"""``Storage.copy``: a new object under another key, with the size and SHA-256 of the bytes
that were copied (computed by the store while copying, or by this process) and the
copy's first bytes; the copy does not change when the source is overwritten."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest

from bidding.core.errors import ErrorCode
from bidding.core.storage import (
    ObjectNotFound,
    S3Storage,
    Storage,
    StorageUnavailable,
    UploadTooLarge,
)
from bidding.core.storage.s3 import _copy_result
from tests.storage.conftest import leftovers, sha256

DATA = os.urandom(3 * 1024 * 1024 + 17)


def test_copy_reports_size_hash_and_head_of_the_copy(storage: Storage) -> None:
    storage.put_bytes("up/a", DATA)
    copied = storage.copy("up/a", "bid/a", head=100)
    assert (copied.key, copied.size, copied.sha256) == ("bid/a", len(DATA), sha256(DATA))
    assert copied.head == DATA[:100]
    assert storage.read_bytes("bid/a") == DATA
    # the source is overwritten (what a still-valid presigned PUT could do): the copy stays
    storage.put_bytes("up/a", b"other bytes")
    assert storage.read_bytes("bid/a") == DATA
    assert storage.hash_object("bid/a") == (len(DATA), sha256(DATA))


def test_copy_head_longer_than_the_object(storage: Storage) -> None:
    storage.put_bytes("up/small", b"tiny")
    copied = storage.copy("up/small", "bid/small", head=70_016)
    assert (copied.size, copied.head) == (4, b"tiny")
    storage.put_bytes("up/empty", b"")
    empty = storage.copy("up/empty", "bid/empty", head=64)
    assert (empty.size, empty.head, empty.sha256) == (0, b"", sha256(b""))


def test_copy_of_a_missing_object(storage: Storage) -> None:
    with pytest.raises(ObjectNotFound) as info:
        storage.copy("up/none", "bid/none", head=10)
    assert info.value.code == ErrorCode.OBJECT_NOT_FOUND
    assert leftovers(storage) == []


def test_local_copy_stops_at_max_size(local_storage: Storage) -> None:
    local_storage.put_bytes("up/big", DATA)
    with pytest.raises(UploadTooLarge):
        local_storage.copy("up/big", "bid/big", max_size=len(DATA) - 1)
    assert leftovers(local_storage) == ["up/big"]
    assert local_storage.copy("up/big", "bid/big", max_size=len(DATA)).size == len(DATA)


@pytest.mark.integration
def test_s3_copy_hash_is_computed_by_the_store(s3_storage: S3Storage) -> None:
    s3_storage.put_bytes("up/s", DATA)
    copied = s3_storage.copy("up/s", "bid/s", head=64)
    assert copied.sha256_by == "store" and copied.sha256 == sha256(DATA)
    assert copied.size == len(DATA) and copied.head == DATA[:64]
    assert copied.etag
    # the uploader's metadata is not carried over (it could name any checksum)
    assert s3_storage.stat("bid/s").sha256 is None


@pytest.mark.integration
def test_s3_copy_ignores_a_checksum_the_uploader_declared(s3_storage: S3Storage) -> None:
    """moto stores a client-sent x-amz-checksum-sha256 without checking it; the copy's
    hash must be the store's own computation over the bytes, not that claim."""
    lie = base64.b64encode(hashlib.sha256(b"something else").digest()).decode()
    s3_storage._ensure_bucket()
    s3_storage.client._put_object(
        s3_storage.bucket,
        "up/lie",
        DATA,
        headers={
            "Content-Type": "application/octet-stream",
            "x-amz-sdk-checksum-algorithm": "SHA256",
            "x-amz-checksum-sha256": lie,
        },
    )
    # the trap: a plain copy (no algorithm asked) reports the uploader's claim
    plain = s3_storage.client._execute(
        "PUT",
        s3_storage.bucket,
        "bid/plain",
        headers={"x-amz-copy-source": f"/{s3_storage.bucket}/up/lie"},
    )
    claimed = _copy_result(plain.data)[1]
    assert claimed == hashlib.sha256(b"something else").hexdigest()
    copied = s3_storage.copy("up/lie", "bid/lie", head=8)
    assert copied.sha256 == sha256(DATA) != claimed
    assert copied.sha256_by == "store"


@pytest.mark.integration
def test_s3_copy_without_a_store_checksum_reads_the_copy_back(s3_storage_url: str) -> None:
    """A store that returns no SHA-256 for a copy (as MinIO's CopyObjectResult): the copy
    is read back once and hashed here; same answer, ``sha256_by == "platform"``."""
    storage = S3Storage.from_url(s3_storage_url, copy_checksum=False)
    storage.put_bytes("up/f", DATA)
    copied = storage.copy("up/f", "bid/f", head=32)
    assert copied.sha256_by == "platform"
    assert (copied.size, copied.sha256, copied.head) == (len(DATA), sha256(DATA), DATA[:32])
    storage.put_bytes("up/f", b"overwritten")
    assert storage.hash_object("bid/f") == (len(DATA), sha256(DATA))


def test_copy_result_parsing() -> None:
    digest = hashlib.sha256(b"x").digest()
    ns = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
    full = base64.b64encode(digest).decode()
    body = (
        f'<CopyObjectResult {ns}><ETag>"e1"</ETag>'
        f"<ChecksumSHA256>{full}</ChecksumSHA256></CopyObjectResult>"
    )
    assert _copy_result(body.encode()) == ("e1", digest.hex())
    # MinIO: no checksum in the result; a composite (per-part) checksum is no file hash
    assert _copy_result(b"<CopyObjectResult><ETag>e2</ETag></CopyObjectResult>") == ("e2", None)
    composite = (
        f"<CopyObjectResult><ETag>e3</ETag><ChecksumSHA256>{full}-3</ChecksumSHA256>"
        "</CopyObjectResult>"
    )
    assert _copy_result(composite.encode()) == ("e3", None)
    # S3 can report a failed copy with 200 and an <Error> body
    with pytest.raises(StorageUnavailable) as info:
        _copy_result(b"<Error><Code>InternalError</Code></Error>")
    assert info.value.details["reason"] == "InternalError"
    with pytest.raises(StorageUnavailable):
        _copy_result(b"not xml")

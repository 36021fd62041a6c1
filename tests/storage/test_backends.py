"""The storage contract, run on both backends (local directory and S3 on moto)."""

from __future__ import annotations

import io
import os

import pytest

from bidding.core.errors import ErrorCode
from bidding.core.storage import (
    ChecksumMismatch,
    InvalidObjectKey,
    ObjectNotFound,
    Storage,
    UploadIncomplete,
    UploadTooLarge,
    new_key,
)
from bidding.core.storage.s3 import S3Storage
from tests.storage.conftest import SMALL_PART, ReadOnlyStream, ShortStream, leftovers, sha256

MULTIPART = 2 * SMALL_PART + 12345  # three parts on S3 with 5 MiB parts


def payload(size: int) -> bytes:
    return os.urandom(size)


@pytest.mark.parametrize("size", [0, 1, 1000, 300_001])
def test_round_trip_small_and_empty(storage: Storage, size: int) -> None:
    data = payload(size)
    key = new_key("tests")
    stored = storage.put(key, io.BytesIO(data), length=size, content_type="application/pdf")
    assert stored.key == key
    assert stored.size == size
    assert stored.sha256 == sha256(data)
    assert stored.etag
    assert storage.exists(key)
    info = storage.stat(key)
    assert info.size == size
    assert info.sha256 == sha256(data)
    assert info.content_type == "application/pdf"
    assert info.last_modified is not None
    assert storage.read_bytes(key) == data
    with storage.open(key) as reader:
        assert reader.read() == data
    opened, length = storage.open_sized(key)
    with opened:
        assert length == size
        assert opened.read() == data
    assert storage.list_keys("tests/") == [key]


def test_put_without_length_and_from_read_only_stream(storage: Storage) -> None:
    data = payload(200_000)
    a = storage.put("t/a", ReadOnlyStream(data))
    b = storage.put("t/b", ShortStream(data, step=777))
    assert a.size == b.size == len(data)
    assert a.sha256 == b.sha256 == sha256(data)
    assert storage.read_bytes("t/a") == storage.read_bytes("t/b") == data


def test_multipart_round_trip(storage: Storage, tmp_path: os.PathLike[str]) -> None:
    data = payload(MULTIPART)
    stored = storage.put("big/one", io.BytesIO(data), length=len(data))
    unknown = storage.put("big/two", ReadOnlyStream(data))  # unknown length
    exact = storage.put("big/three", io.BytesIO(data[: 2 * SMALL_PART]))  # parts exactly full
    assert stored.sha256 == unknown.sha256 == sha256(data)
    assert exact.sha256 == sha256(data[: 2 * SMALL_PART])
    if isinstance(storage, S3Storage):
        assert "-" not in stored.etag  # known length: one PUT, streamed as it was read
        assert unknown.etag.endswith("-3")  # unknown length: really went in three parts
    target = os.path.join(tmp_path, "out.bin")
    got = storage.get("big/one", target)
    assert got.size == len(data)
    assert got.sha256 == sha256(data)
    with open(target, "rb") as f:
        assert f.read() == data
    sink = io.BytesIO()
    assert storage.get("big/three", sink).sha256 == exact.sha256
    assert leftovers(storage) == ["big/one", "big/three", "big/two"]


def test_stat_knows_checksum_when_expected_is_given(storage: Storage) -> None:
    data = payload(MULTIPART)
    storage.put("m/x", io.BytesIO(data), expected_sha256=sha256(data).upper())
    assert storage.stat("m/x").sha256 == sha256(data)


def test_delete_and_exists(storage: Storage) -> None:
    storage.put_bytes("d/x", b"abc")
    assert storage.exists("d/x")
    storage.delete("d/x")
    assert not storage.exists("d/x")
    storage.delete("d/x")  # deleting twice is fine
    with pytest.raises(ObjectNotFound) as err:
        storage.stat("d/x")
    assert err.value.code == ErrorCode.OBJECT_NOT_FOUND
    assert err.value.http_status == 404
    with pytest.raises(ObjectNotFound):
        storage.open("d/x")
    with pytest.raises(ObjectNotFound):
        storage.open_sized("d/x")
    assert leftovers(storage) == []


def test_overwrite_replaces_content(storage: Storage) -> None:
    storage.put_bytes("o/x", b"first")
    storage.put_bytes("o/x", b"second!")
    assert storage.read_bytes("o/x") == b"second!"
    assert storage.stat("o/x").sha256 == sha256(b"second!")


# -- refusals leave nothing behind ---------------------------------------------------------


@pytest.mark.parametrize("size", [1000, MULTIPART])
def test_truncated_stream_is_refused(storage: Storage, size: int) -> None:
    data = payload(size)
    with pytest.raises(UploadIncomplete) as err:
        storage.put("r/x", io.BytesIO(data[:-1]), length=size)
    assert err.value.code == ErrorCode.UPLOAD_INCOMPLETE
    assert err.value.details == {"received": size - 1, "expected": size}
    assert not storage.exists("r/x")
    assert leftovers(storage) == []


@pytest.mark.parametrize("size", [1000, MULTIPART])
def test_client_disconnect_is_refused(storage: Storage, size: int) -> None:
    stream = ShortStream(payload(size // 2), fail=ConnectionResetError("peer went away"))
    with pytest.raises(UploadIncomplete) as err:
        storage.put("r/x", stream, length=size)
    assert err.value.code == ErrorCode.UPLOAD_INCOMPLETE
    assert leftovers(storage) == []


def test_stream_failure_without_length_is_refused(storage: Storage) -> None:
    stream = ShortStream(payload(MULTIPART), fail=OSError("reset"))
    with pytest.raises(UploadIncomplete):
        storage.put("r/x", stream)
    assert leftovers(storage) == []


@pytest.mark.parametrize("size", [1000, MULTIPART])
def test_over_max_size_is_refused(storage: Storage, size: int) -> None:
    data = payload(size)
    # Declared length over the limit: refused before reading.
    with pytest.raises(UploadTooLarge) as err:
        storage.put("r/x", io.BytesIO(data), length=size, max_size=size - 1)
    assert err.value.code == ErrorCode.UPLOAD_TOO_LARGE
    assert err.value.http_status == 413
    # Unknown length: refused when the limit is passed.
    with pytest.raises(UploadTooLarge):
        storage.put("r/x", io.BytesIO(data), max_size=size - 1)
    assert leftovers(storage) == []
    # Exactly at the limit is fine.
    assert storage.put("r/x", io.BytesIO(data), max_size=size).size == size


@pytest.mark.parametrize("size", [1000, MULTIPART])
def test_more_bytes_than_declared_are_refused(storage: Storage, size: int) -> None:
    with pytest.raises(UploadTooLarge):
        storage.put("r/x", io.BytesIO(payload(size + 1)), length=size)
    assert leftovers(storage) == []


@pytest.mark.parametrize("size", [0, 1000, MULTIPART])
def test_checksum_mismatch_is_refused(storage: Storage, size: int) -> None:
    data = payload(size)
    wrong = sha256(data + b"x")
    with pytest.raises(ChecksumMismatch) as err:
        storage.put("r/x", io.BytesIO(data), length=size, expected_sha256=wrong)
    assert err.value.code == ErrorCode.CHECKSUM_MISMATCH
    assert err.value.http_status == 422
    assert err.value.details == {"expected_sha256": wrong, "actual_sha256": sha256(data)}
    assert leftovers(storage) == []
    ok = storage.put("r/x", io.BytesIO(data), length=size, expected_sha256=sha256(data))
    assert ok.sha256 == sha256(data)


@pytest.mark.parametrize("declared", [False, True])
def test_refused_upload_keeps_the_previous_object(storage: Storage, declared: bool) -> None:
    # declared: the hash is given, so S3 streams the PUT (its last byte is never sent)
    storage.put_bytes("keep/x", b"original")
    expected = sha256(payload(100)) if declared else None
    with pytest.raises(UploadIncomplete):
        storage.put("keep/x", io.BytesIO(b"short"), length=100, expected_sha256=expected)
    with pytest.raises(ChecksumMismatch):
        storage.put(
            "keep/x",
            io.BytesIO(payload(99) + b"?"),
            length=100,
            expected_sha256=expected or sha256(b""),
        )
    assert storage.read_bytes("keep/x") == b"original"


def test_malformed_expected_checksum_is_a_bad_request(storage: Storage) -> None:
    with pytest.raises(Exception) as err:
        storage.put("r/x", io.BytesIO(b"a"), expected_sha256="not-a-hash")
    assert getattr(err.value, "code", None) == ErrorCode.BAD_REQUEST
    assert leftovers(storage) == []


@pytest.mark.parametrize(
    "key", ["", "/abs", "a/../b", "..", "a//b", "a/", ".hidden", "a/.meta", "a b", "键", "a\\b"]
)
def test_invalid_keys_are_refused(storage: Storage, key: str) -> None:
    with pytest.raises(InvalidObjectKey) as err:
        storage.put(key, io.BytesIO(b"x"))
    assert err.value.code == ErrorCode.INVALID_OBJECT_KEY
    for call in (storage.stat, storage.open, storage.delete, storage.exists):
        with pytest.raises(InvalidObjectKey):
            call(key)
    assert leftovers(storage) == []


# -- direct uploads by clients: verification -------------------------------------------------


def test_verify_object_accepts_a_matching_object(storage: Storage) -> None:
    data = payload(MULTIPART)
    storage.put("v/x", io.BytesIO(data))
    info = storage.verify_object("v/x", len(data), sha256(data))
    assert (info.size, info.sha256) == (len(data), sha256(data))
    assert storage.exists("v/x")


@pytest.mark.parametrize(
    ("size_delta", "wrong_hash", "error"),
    [(1, False, UploadIncomplete), (-1, False, UploadTooLarge), (0, True, ChecksumMismatch)],
)
def test_verify_object_deletes_a_mismatching_object(
    storage: Storage, size_delta: int, wrong_hash: bool, error: type[Exception]
) -> None:
    data = payload(5000)
    storage.put("v/x", io.BytesIO(data))
    expected = sha256(b"other") if wrong_hash else sha256(data)
    with pytest.raises(error):
        storage.verify_object("v/x", len(data) + size_delta, expected)
    assert not storage.exists("v/x")


def test_verify_missing_object(storage: Storage) -> None:
    with pytest.raises(ObjectNotFound):
        storage.verify_object("v/none", 1, sha256(b"x"))


# -- multipart upload driven by a client (resumable) ----------------------------------------


def test_multipart_upload_lifecycle(storage: Storage) -> None:
    """Creating, listing and aborting uploads (parts are sent through presigned URLs:
    see test_s3.py and test_local_links.py)."""
    upload_id = storage.create_multipart_upload("mp/x", content_type="application/zip")
    assert storage.list_parts("mp/x", upload_id) == []
    abandoned = storage.create_multipart_upload("mp/y")
    storage.abort_multipart_upload("mp/y", abandoned)
    storage.abort_multipart_upload("mp/y", abandoned)  # twice is fine
    assert not storage.exists("mp/y")
    assert not storage.exists("mp/x")  # nothing until completed
    with pytest.raises(ObjectNotFound):
        storage.list_parts("mp/y", abandoned)

"""Streamed uploads: the envelope is checked on its way in, and the commit trusts the
findings instead of reading the object back (SQLite, local storage).

Refusals at upload time carry the codes a commit-time read-back would give and leave no
object and no upload row; a verified upload is committed with no ``open()`` of its
object; a multipart upload still is read back.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from bidding.bids import services
from bidding.bids.models import BidUpload, UploadState
from bidding.core import db
from bidding.core.errors import DomainError
from bidding.core.storage import get_storage
from crypto import merkle
from crypto.envelope import FIXED_HEADER_SIZE, read_header
from crypto.recipients import key_id
from crypto.threshold import public_key_fingerprint
from tests.bids.helpers import BidWorld, Sealed, commit, seal_bid, upload
from tests.bids.test_api import auth, base, commit_body


class CountingStorage:
    """The app's storage with its ``open()``/``open_sized()`` calls counted (reads of a
    stored object)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.opened: list[str] = []

    def open(self, key: str) -> Any:
        self.opened.append(key)
        return self.inner.open(key)

    def open_sized(self, key: str) -> Any:
        self.opened.append(key)
        return self.inner.open_sized(key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch, app: Flask) -> Iterator[CountingStorage]:
    wrapper = CountingStorage(get_storage())
    monkeypatch.setattr(services, "get_storage", lambda: wrapper)
    yield wrapper


def _keys() -> list[str]:
    return get_storage().list_keys("bids/")


def _stream_refused(bw: BidWorld, data: bytes, declared: int | None = None) -> DomainError:
    """Upload ``data`` (declared as its own SHA-256); expect a refusal, nothing left."""
    s = db.get_session()
    s.commit()
    with pytest.raises(DomainError) as info:
        services.upload_bid_stream(
            bw.rep(0),
            bw.section,
            io.BytesIO(data),
            len(data) if declared is None else declared,
            sha256=hashlib.sha256(data).hexdigest(),
            client_key=uuid.uuid4().hex,
        )
    s.rollback()  # as a request would; the deferred clean-up runs when it ends
    assert _keys() == []
    assert db.get_session().scalar(select(BidUpload.id)) is None
    return info.value


def _set(data: bytes, pos: int, value: bytes) -> bytes:
    return data[:pos] + value + data[pos + len(value) :]


def _first_word(envelope: bytes) -> int:
    return int.from_bytes(envelope[12:16], "big")  # the header size: the first word's offset


@pytest.mark.parametrize(
    ("name", "mutate", "crypto_code"),
    [
        ("truncated", lambda e: e[:-30], "envelope_truncated"),
        ("truncated at a record end", lambda e: e[: _first_word(e) + 4 + 1024 + 16], None),
        ("no segment", lambda e: e[: _first_word(e)], "envelope_truncated"),
        ("trailing data", lambda e: e + b"\0" * 5, "envelope_trailing_data"),
        ("a second envelope appended", lambda e: e + e, "envelope_trailing_data"),
        ("bad version", lambda e: _set(e, 8, b"\x07"), "envelope_version_unsupported"),
        ("bad header size", lambda e: _set(e, 12, b"\xff\xff\xff\xff"), "envelope_limit_exceeded"),
        (
            "bad length word",
            lambda e: _set(e, _first_word(e), b"\x00\x00\x00\x05"),
            "envelope_format",
        ),
    ],
)
def test_malformed_envelope_is_refused_at_upload(
    bw: BidWorld, name: str, mutate: Any, crypto_code: str | None
) -> None:
    envelope = seal_bid(bw, 0, plaintext=bytes(range(256)) * 20).envelope  # 5 segments
    err = _stream_refused(bw, mutate(envelope))
    assert err.code == "bid_envelope_invalid", err.to_dict()
    assert err.details["crypto_code"] == (crypto_code or "envelope_truncated")


@pytest.mark.parametrize("data", [b"", b"\x89SUN", b"PK\x03\x04" * 1000, bytes(70)])
def test_unencrypted_body_is_refused_at_upload(bw: BidWorld, data: bytes) -> None:
    assert _stream_refused(bw, data).code == "bid_not_encrypted"


def test_refusal_code_precedence_is_kept(bw: BidWorld) -> None:
    """Stream shorter than declared: ``upload_incomplete`` (the store's), not a truncated
    envelope; longer: ``upload_too_large``; well-formed but other hash: ``checksum_mismatch``."""
    envelope = seal_bid(bw, 0).envelope
    assert _stream_refused(bw, envelope[:-10], len(envelope)).code == "upload_incomplete"
    assert _stream_refused(bw, envelope + b"x", len(envelope)).code == "upload_too_large"
    s = db.get_session()
    s.commit()
    with pytest.raises(DomainError) as info:
        services.upload_bid_stream(
            bw.rep(0),
            bw.section,
            io.BytesIO(envelope),
            len(envelope),
            sha256="00" * 32,
            client_key="k",
        )
    assert info.value.code == "checksum_mismatch"
    s.rollback()
    assert _keys() == []


class ReadOnly:
    """A body with ``read`` only (no ``readinto``), in small pieces."""

    def __init__(self, data: bytes) -> None:
        self._src = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._src.read(min(n, 777) if n >= 0 else 777)


def test_findings_are_kept_on_the_upload(bw: BidWorld) -> None:
    sealed = seal_bid(bw, 0)
    up = services.upload_bid_stream(
        bw.rep(0),
        bw.section,
        ReadOnly(sealed.envelope),
        sealed.size,
        sha256=sealed.sha256,
        client_key="k",
    )
    header = read_header(io.BytesIO(sealed.envelope))
    assert up.state is UploadState.RECEIVED and up.envelope_verified
    assert up.envelope_section_id == str(bw.section.id)
    assert up.envelope_opening_key_fingerprint == bw.section.opening_key_fingerprint
    assert up.envelope_recipient_key_ids == [k.hex() for k in header.recipient_key_ids()]
    assert up.envelope_key_commitment == sealed.manifest["data_key_commitment"]
    assert up.envelope_segment_size == sealed.manifest["segment_size"]
    assert up.envelope_version == 1
    assert up.envelope_header_sha256 == header.sha256.hex()
    assert up.envelope_sha256 == sealed.sha256 and up.envelope_size == sealed.size
    stored = get_storage().stat(up.storage_key)
    assert stored.size == sealed.size
    with get_storage().open(up.storage_key) as f:
        assert hashlib.sha256(f.read()).hexdigest() == sealed.sha256


def test_commit_of_a_verified_stream_upload_reads_nothing_back(
    bw: BidWorld, counting: CountingStorage
) -> None:
    sealed = seal_bid(bw, 0)
    up = upload(bw, 0, sealed)
    result = commit(bw, 0, sealed, up)
    assert counting.opened == []
    bid = result.bid
    assert bid.ciphertext_sha256 == sealed.sha256 and bid.ciphertext_size == sealed.size
    assert bid.data_key_commitment == up.envelope_key_commitment
    assert bid.envelope_header_sha256 == up.envelope_header_sha256


def test_commit_of_a_multipart_upload_reads_it_back(
    bw: BidWorld, counting: CountingStorage
) -> None:
    sealed = seal_bid(bw, 0)
    ticket = services.start_upload(
        bw.rep(0), bw.section, size=sealed.size, sha256=sealed.sha256, client_key="m"
    )
    up = ticket.upload
    counting.put_part(
        up.storage_key, up.multipart_upload_id, 1, io.BytesIO(sealed.envelope), length=sealed.size
    )
    assert not up.envelope_verified
    commit(bw, 0, sealed, up)
    assert counting.opened == [up.storage_key]


def _refuse_commit(code: str, bw: BidWorld, sealed: Sealed, up: BidUpload) -> None:
    s = db.get_session()
    s.commit()
    with pytest.raises(DomainError) as info:
        commit(bw, 0, sealed, up)
    s.rollback()
    assert info.value.code == code, info.value.to_dict()


def test_findings_are_judged_against_the_section_as_it_is_at_commit(
    bw: BidWorld, counting: CountingStorage
) -> None:
    """The opening key was replaced after the upload: the stored findings name the old one."""
    sealed = seal_bid(bw, 0)
    up = upload(bw, 0, sealed)
    new_key = X25519PrivateKey.generate().public_key()
    section = bw.section
    section.opening_public_key = new_key.public_bytes_raw().hex()
    section.opening_key_fingerprint = public_key_fingerprint(new_key)
    _refuse_commit("bid_stale_opening_key", bw, sealed, up)
    assert counting.opened == []
    row = db.get_session().get(BidUpload, up.id)
    assert row is not None and row.state is UploadState.REFUSED
    assert not get_storage().exists(row.storage_key)


def test_tampered_findings_do_not_pass_the_manifest(bw: BidWorld) -> None:
    """The findings are compared with the signed manifest like a read-back would be."""
    sealed = seal_bid(bw, 0)
    up = upload(bw, 0, sealed)
    up.envelope_key_commitment = "00" * 32
    _refuse_commit("bid_manifest_mismatch", bw, sealed, up)
    up2 = upload(bw, 0, sealed, key="other")
    up2.envelope_recipient_key_ids = [key_id(X25519PrivateKey.generate().public_key()).hex()]
    _refuse_commit("bid_stale_opening_key", bw, sealed, up2)


def test_api_refuses_a_malformed_stream_with_the_code(client: FlaskClient, bw: BidWorld) -> None:
    h = auth(bw, bw.rep(0))
    bad = seal_bid(bw, 0)
    bad.envelope = bad.envelope[:FIXED_HEADER_SIZE] + b"\xff" * 5000
    good = seal_bid(bw, 0)
    path = base(bw)
    db.get_session().commit()

    def put(sealed: Sealed) -> Any:
        return client.put(
            f"{path}/uploads/stream/up-{sealed.sha256[:8]}?sha256={sealed.sha256}",
            data=sealed.envelope,
            headers={**h, "Content-Type": "application/octet-stream"},
        )

    r = put(bad)
    assert r.status_code == 422, r.get_json()
    assert r.get_json()["code"] == "bid_envelope_invalid"
    assert _keys() == []
    r = put(good)
    assert r.status_code == 201 and r.get_json()["state"] == "received"
    body = commit_body(r.get_json()["id"], good)
    r = client.post(path, json=body, headers={**h, "Idempotency-Key": "1"})
    assert r.status_code == 201, r.get_json()
    first = r.get_json()
    # not computed under the section lock: the first answer has no proof, a replay has it
    assert first["proof"] is None and first["receipt"]["root_hash"]
    replay = client.post(path, json=body, headers={**h, "Idempotency-Key": "1"}).get_json()
    assert replay["replayed"] and replay["proof"]["leaf_index"] == first["receipt"]["log_index"]
    merkle.verify_inclusion(
        bytes.fromhex(replay["proof"]["leaf_hash"]),
        replay["proof"]["leaf_index"],
        replay["proof"]["tree_size"],
        [bytes.fromhex(p) for p in replay["proof"]["audit_path"]],
        bytes.fromhex(first["receipt"]["root_hash"]),
    )
    proof = client.get(f"{path}/{first['bid']['id']}/proof", headers=h).get_json()
    assert proof == replay["proof"]

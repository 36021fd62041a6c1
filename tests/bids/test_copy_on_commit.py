"""Copy-on-commit of single-PUT uploads (SQLite, local store): the bid lives in a copy no
presigned URL names; the header of the copy is checked; a refused commit leaves no copy;
the sweep removes what a commit leaves behind."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flask.testing import FlaskClient

from bidding.bids import services
from bidding.bids.models import BidUpload, UploadState
from bidding.core import db
from bidding.core.clock import Clock
from bidding.core.storage import get_storage
from crypto.signing import BidManifest, sign_manifest
from crypto.threshold import public_key_fingerprint
from tests.bids.helpers import BidWorld, Sealed, commit, seal_bid
from tests.bids.test_api import auth, base, commit_body
from tests.bids.test_services import assert_refused_and_deleted, refuse, refused_events


def _single(bw: BidWorld, sealed: Sealed, key: str, data: bytes | None = None) -> BidUpload:
    """A single-PUT upload whose bytes arrived (what the presigned PUT URL does)."""
    ticket = services.start_upload(
        bw.rep(0),
        bw.section,
        size=sealed.size,
        sha256=sealed.sha256,
        client_key=key,
        method="single",
    )
    body = sealed.envelope if data is None else data
    get_storage().put(ticket.upload.storage_key, io.BytesIO(body), length=len(body))
    return ticket.upload


def _keys() -> list[str]:
    return get_storage().list_keys("bids/")


def deadline_while_waiting(
    monkeypatch: pytest.MonkeyPatch, clock: Clock, bw: BidWorld
) -> list[Any]:
    """The deadline passes while the commit waits for the section lock (after its copy):
    returns what the store held under ``bids/`` at that moment."""
    real = services._lock_section
    seen: list[Any] = []

    def lock(section: Any) -> Any:
        seen.append(_keys())
        assert bw.section.bid_deadline is not None
        clock.freeze(bw.section.bid_deadline)
        return real(section)

    monkeypatch.setattr(services, "_lock_section", lock)
    return seen


def test_refused_under_the_lock_leaves_no_copy(
    bw: BidWorld, frozen_clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    sealed = seal_bid(bw, 0)
    up = _single(bw, sealed, "late")
    seen = deadline_while_waiting(monkeypatch, frozen_clock, bw)
    refuse("bid_deadline_passed", commit, bw, 0, sealed, up)
    assert len(seen) == 1 and len(seen[0]) == 2, "upload and its copy existed at the lock"
    assert up.storage_key in seen[0]
    assert_refused_and_deleted("bid_deadline_passed", up)
    assert _keys() == []


@pytest.mark.parametrize(
    ("code", "kwargs"),
    [
        ("bid_wrong_section", {"section_id": "f" * 32}),
        ("bid_stale_opening_key", "stale"),
        ("bid_stale_opening_key", "not_a_recipient"),
    ],
)
def test_header_of_the_copy_is_checked(bw: BidWorld, code: str, kwargs: Any) -> None:
    if kwargs == "stale":
        old = X25519PrivateKey.generate().public_key()
        kwargs = {"opening_key": old, "fingerprint": public_key_fingerprint(old)}
    elif kwargs == "not_a_recipient":  # right fingerprint, sealed to another key
        kwargs = {"opening_key": X25519PrivateKey.generate().public_key()}
    sealed = seal_bid(bw, 0, **kwargs)
    up = _single(bw, sealed, code)
    refuse(code, commit, bw, 0, sealed, up)
    assert_refused_and_deleted(code, up)
    assert _keys() == []


def test_not_encrypted_and_broken_header(bw: BidWorld) -> None:
    sealed = seal_bid(bw, 0)
    for key, data, code in (
        ("zip", b"PK\x03\x04" + sealed.envelope[4:], "bid_not_encrypted"),
        ("pdf", b"%PDF-1.7" + bytes(sealed.size - 8), "bid_not_encrypted"),
        ("short-header", sealed.envelope[:40] + bytes(sealed.size - 40), "bid_envelope_invalid"),
    ):
        up = _single(bw, sealed, key, data)
        refuse(code, commit, bw, 0, sealed, up)
        assert_refused_and_deleted(code, up)
    assert _keys() == []


def test_record_damage_the_bidder_signed_is_left_to_the_opening(bw: BidWorld) -> None:
    """Only the header is parsed at the commit: bytes after it are what the bidder signed
    (the store's hash of the copy = the manifest's), so a damaged record is accepted
    here and revokes the bid at the opening (the bidder's fault, DZ20 31)."""
    good = seal_bid(bw, 0)
    damaged = bytearray(good.envelope)
    damaged[-20] ^= 0x01  # inside the last record's tag
    digest = hashlib.sha256(damaged).hexdigest()
    manifest = BidManifest(
        **{**BidManifest.from_document(good.manifest).__dict__, "ciphertext_sha256": digest}
    )
    signature = sign_manifest(bw.cert(0).private_key, manifest)
    sealed = Sealed(bytes(damaged), manifest.to_document(), signature, good.chain)
    up = _single(bw, sealed, "damaged")
    result = commit(bw, 0, sealed, up)
    assert result.bid.ciphertext_sha256 == digest
    db.get_session().commit()
    assert get_storage().read_bytes(result.bid.storage_key) == bytes(damaged)


def test_overwrite_through_the_old_put_url_changes_nothing(
    client: FlaskClient, bw: BidWorld
) -> None:
    """The local store's signed PUT link stays valid until the upload ends: PUT again after
    the commit; the bid's ciphertext (and its receipt's hash) still hold."""
    h = auth(bw, bw.rep(0))
    sealed = seal_bid(bw, 0)
    db.get_session().commit()
    body = {"size": sealed.size, "sha256": sealed.sha256, "client_key": "o1", "method": "single"}
    ticket = client.post(f"{base(bw)}/uploads", json=body, headers=h).get_json()
    put = client.put(ticket["put_url"], data=sealed.envelope)
    assert put.status_code == 200, put.get_json()
    r = client.post(
        base(bw),
        json=commit_body(ticket["upload"]["id"], sealed),
        headers={**h, "Idempotency-Key": "o1"},
    )
    assert r.status_code == 201, r.get_json()
    bid = r.get_json()["bid"]
    other = seal_bid(bw, 0, price="1.00").envelope
    again = client.put(ticket["put_url"], data=other)
    assert again.status_code == 200  # the link works, and writes only the upload's key
    storage = get_storage()
    key = f"bids/{bw.section.id}/{bid['id'].replace('-', '')}"
    assert storage.read_bytes(key) == sealed.envelope
    assert storage.hash_object(key) == (sealed.size, sealed.sha256)
    assert r.get_json()["receipt"]["ciphertext_sha256"] == sealed.sha256


def test_sweep_deletes_leftovers_of_copy_on_commit(bw: BidWorld, frozen_clock: Clock) -> None:
    """Orphans: a re-PUT to a committed upload's key, and a copy whose commit never
    committed; kept: the bid's copy and a pending upload's object."""
    sealed = seal_bid(bw, 0)
    up = _single(bw, sealed, "c1")
    bid = commit(bw, 0, sealed, up).bid
    db.get_session().commit()
    assert not get_storage().exists(up.storage_key)
    storage = get_storage()
    storage.put_bytes(up.storage_key, b"PUT again after the commit")
    storage.put_bytes(f"bids/{bw.section.id}/{'a' * 32}", b"a copy of a commit that failed")
    pending = _single(bw, seal_bid(bw, 1), "p1")
    db.get_session().commit()
    real = datetime.now(UTC)  # the local store's objects carry the file system's mtime
    # within the grace period nothing is touched (a commit may be copying right now)
    assert services._delete_orphans(storage, real) == 0
    assert services._delete_orphans(storage, real + timedelta(hours=7)) == 2
    assert sorted(_keys()) == sorted([bid.storage_key, pending.storage_key])
    assert not refused_events("bid_deadline_passed")
    assert pending.state is UploadState.OPEN

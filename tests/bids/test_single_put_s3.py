"""Single presigned PUT to the S3 server: the client's bytes go straight to S3 through
the presigned URL; the commit has S3 copy the object to the bid's own key (S3 hashes the
copy) and reads the envelope header of the copy; a refusal deletes upload and copy."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from bidding.bids import services
from bidding.bids.models import UploadState
from bidding.config import Settings
from bidding.core import db
from bidding.core.clock import Clock
from bidding.core.storage import S3Storage, get_storage
from tests.bids.helpers import BidWorld, Sealed, commit, seal_bid
from tests.bids.test_copy_on_commit import deadline_while_waiting
from tests.bids.test_services import assert_refused_and_deleted, refuse
from tests.conftest import make_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(tmp_path: Path, s3_storage_url: str) -> Settings:
    return make_settings(tmp_path / "instance", storage_url=s3_storage_url)


def _put(bw: BidWorld, sealed: Sealed, key: str, data: bytes) -> services.UploadTicket:
    get_storage().check()  # the bucket exists (as in any deployment)
    ticket = services.start_upload(
        bw.rep(0),
        bw.section,
        size=sealed.size,
        sha256=sealed.sha256,
        client_key=key,
        method="single",
    )
    assert ticket.put_url is not None
    r = requests.put(
        ticket.put_url,
        data=data,
        headers={"Content-Type": "application/octet-stream"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return ticket


def test_single_put_to_s3_commit_and_refusals(bw: BidWorld) -> None:
    sealed = seal_bid(bw, 0)
    bad = sealed.envelope[:-1] + bytes([sealed.envelope[-1] ^ 1])
    up = _put(bw, sealed, "bad", bad).upload
    refuse("checksum_mismatch", commit, bw, 0, sealed, up)
    assert_refused_and_deleted("checksum_mismatch", up)
    up = _put(bw, sealed, "short", sealed.envelope[:-5]).upload
    refuse("upload_incomplete", commit, bw, 0, sealed, up)
    assert_refused_and_deleted("upload_incomplete", up)
    assert get_storage().list_keys("bids/") == []

    ticket = _put(bw, sealed, "ok", sealed.envelope)
    result = commit(bw, 0, sealed, ticket.upload)
    db.get_session().commit()
    assert ticket.upload.state is UploadState.COMMITTED
    assert get_storage().stat(result.bid.storage_key).size == sealed.size
    assert not get_storage().exists(ticket.upload.storage_key)
    assert get_storage().list_keys("bids/") == [result.bid.storage_key]


def test_put_url_never_outlives_the_deadline(bw: BidWorld, frozen_clock: Clock) -> None:
    """A presigned PUT cannot be revoked: it must not be usable after the bid deadline."""
    sealed = seal_bid(bw, 0)
    assert bw.section.bid_deadline is not None
    frozen_clock.freeze(bw.section.bid_deadline - timedelta(minutes=10))
    ticket = services.start_upload(
        bw.rep(0),
        bw.section,
        size=sealed.size,
        sha256=sealed.sha256,
        client_key="late",
        method="single",
    )
    assert ticket.put_url is not None
    query = parse_qs(urlsplit(ticket.put_url).query)
    assert int(query["X-Amz-Expires"][0]) == 600


def test_overwrite_with_the_old_put_url_after_commit_changes_nothing(bw: BidWorld) -> None:
    """The presigned PUT URL cannot be revoked and still works after the commit: the bid
    is a copy under a key no URL names, so its bytes (and receipt hash) hold."""
    sealed = seal_bid(bw, 0)
    ticket = _put(bw, sealed, "ok", sealed.envelope)
    result = commit(bw, 0, sealed, ticket.upload)
    db.get_session().commit()
    assert ticket.put_url is not None and result.bid.storage_key not in ticket.put_url
    assert not get_storage().exists(ticket.upload.storage_key)
    other = seal_bid(bw, 0, price="1.00").envelope
    r = requests.put(
        ticket.put_url,
        data=other,
        headers={"Content-Type": "application/octet-stream"},
        timeout=30,
    )
    assert r.status_code == 200, r.text  # the old URL still writes — its own key only
    storage = get_storage()
    assert storage.read_bytes(ticket.upload.storage_key) == other
    assert storage.read_bytes(result.bid.storage_key) == sealed.envelope
    assert storage.hash_object(result.bid.storage_key) == (sealed.size, sealed.sha256)
    assert result.bid.receipt["ciphertext_sha256"] == sealed.sha256


def test_refused_under_the_lock_leaves_no_copy_in_s3(
    bw: BidWorld, frozen_clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    sealed = seal_bid(bw, 0)
    up = _put(bw, sealed, "late", sealed.envelope).upload
    seen = deadline_while_waiting(monkeypatch, frozen_clock, bw)
    refuse("bid_deadline_passed", commit, bw, 0, sealed, up)
    assert len(seen) == 1 and len(seen[0]) == 2, "the copy existed when the lock was taken"
    assert_refused_and_deleted("bid_deadline_passed", up)
    assert get_storage().list_keys("bids/") == []


def test_store_without_copy_checksum_falls_back_to_reading_the_copy(
    bw: BidWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store that returns no SHA-256 for a copy (MinIO): the commit hashes the copy
    itself; the outcome is the same, refusals included."""
    storage = get_storage()
    assert isinstance(storage, S3Storage)
    read_backs: list[str] = []
    real = storage._read_back

    def counting(key: str, n: int) -> tuple[int, str, bytes]:
        read_backs.append(key)
        return real(key, n)

    monkeypatch.setattr(storage, "_read_back", counting)
    monkeypatch.setattr(storage, "copy_checksum", False)
    sealed = seal_bid(bw, 0)
    flipped = sealed.envelope[:-1] + bytes([sealed.envelope[-1] ^ 1])
    bad = _put(bw, sealed, "bad", flipped).upload
    refuse("checksum_mismatch", commit, bw, 0, sealed, bad)
    assert_refused_and_deleted("checksum_mismatch", bad)
    ticket = _put(bw, sealed, "ok", sealed.envelope)
    result = commit(bw, 0, sealed, ticket.upload)
    db.get_session().commit()
    assert result.bid.ciphertext_sha256 == sealed.sha256
    # each copy was read back once (the refused one too), never the upload itself
    assert len(read_backs) == 2 and read_backs[1] == result.bid.storage_key
    assert read_backs[0].startswith(f"bids/{bw.section.id}/")
    assert bad.storage_key not in read_backs and not storage.exists(read_backs[0])
    assert not get_storage().exists(ticket.upload.storage_key)
    assert storage.list_keys("bids/") == [result.bid.storage_key]
    assert storage.read_bytes(result.bid.storage_key) == sealed.envelope
    # and with the store's checksum (moto computes it), nothing is read back
    monkeypatch.setattr(storage, "copy_checksum", True)
    again = seal_bid(bw, 0, price="4600000.00")
    commit(bw, 0, again, _put(bw, again, "store", again.envelope).upload)
    assert len(read_backs) == 2

"""Bids services on SQLite: commit with receipt, replace, withdraw, every refusal."""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy import select

from bidding.bids import services
from bidding.bids.models import Bid, BidState, BidUpload, UploadState
from bidding.bids.trust import demo_issue_bidder_certificate, demo_revoke_certificate
from bidding.core import db
from bidding.core.audit import AuditEvent, AuditTreeHead, leaf_bytes
from bidding.core.clock import Clock, now
from bidding.core.errors import DomainError
from bidding.core.signing_key import platform_key
from bidding.core.storage import get_storage
from bidding.projects import services as project_services
from bidding.projects.models import SectionState
from crypto import merkle, pki
from crypto.receipt import Receipt, verify_receipt
from crypto.threshold import public_key_fingerprint
from tests.bids.helpers import BidWorld, commit, make_bid_world, seal_bid, submit, upload


def _bid_keys() -> list[str]:
    return get_storage().list_keys("bids/")


def refuse(code: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> DomainError:
    """Commit the setup, expect ``code``, then end the transaction as a request would."""
    s = db.get_session()
    s.commit()
    with pytest.raises(DomainError) as info:
        fn(*args, **kwargs)
    s.rollback()
    assert info.value.code == code, info.value.to_dict()
    return info.value


def refused_events(code: str) -> list[AuditEvent]:
    rows = db.get_session().scalars(
        select(AuditEvent).where(AuditEvent.action == "bid.commit_refused")
    )
    return [e for e in rows if e.data["code"] == code]


def assert_refused_and_deleted(code: str, up: BidUpload) -> None:
    assert refused_events(code), "the refusal is audited in its own transaction"
    row = db.get_session().get(BidUpload, up.id)
    assert row is not None
    db.get_session().refresh(row)
    assert row.state is UploadState.REFUSED and row.refusal_code == code
    assert not get_storage().exists(row.storage_key)
    assert db.get_session().scalar(select(Bid.id)) is None


# --------------------------------------------------------------------------- acceptance


def test_commit_returns_receipt_that_verifies_offline_and_is_in_the_log(bw: BidWorld) -> None:
    result = submit(bw, 0)
    bid = result.bid
    assert bid.state is BidState.COMMITTED and bid.is_current
    assert bid.committed_at == now()
    assert get_storage().exists(bid.storage_key)
    receipt = Receipt.from_dict(bid.receipt)
    assert receipt.bid_id == str(bid.id)
    assert receipt.section_id == str(bw.section.id)
    assert receipt.bidder_id == bw.org(0).credit_code
    assert receipt.ciphertext_sha256 == bid.ciphertext_sha256
    assert receipt.log_index == bid.log_index
    verify_receipt(receipt, platform_key().public_key)  # offline, with the published key
    # the acceptance event is the receipt's leaf, included in the signed tree head
    s = db.get_session()
    event = s.get(AuditEvent, bid.audit_event_id)
    assert event is not None and event.action == "bid.committed"
    assert event.leaf_index == receipt.log_index
    head = s.scalars(
        select(AuditTreeHead).where(AuditTreeHead.tree_size == receipt.tree_size)
    ).one()
    assert head.root_hash.hex() == receipt.root_hash
    assert platform_key().verify(
        head.signature,
        merkle.TreeHead(head.tree_size, head.root_hash, head.timestamp).signing_payload(),
    )
    proof = result.proof
    merkle.verify_inclusion(
        merkle.leaf_hash(leaf_bytes(event)),
        proof.leaf_index,
        proof.tree_size,
        [bytes.fromhex(p) for p in proof.audit_path],
        head.root_hash,
    )


def test_replay_with_same_key_returns_first_result_even_after_deadline(
    bw: BidWorld, frozen_clock: Clock
) -> None:
    sealed = seal_bid(bw, 0)
    up = upload(bw, 0, sealed)
    first = commit(bw, 0, sealed, up, key="k-1")
    db.get_session().commit()
    frozen_clock.move(timedelta(days=60))  # past the deadline
    again = commit(bw, 0, sealed, up, key="k-1")
    assert again.replayed and again.bid.id == first.bid.id
    assert again.bid.receipt == first.bid.receipt
    assert db.get_session().scalars(select(Bid)).all() == [first.bid]


def test_same_key_with_another_upload_is_refused(bw: BidWorld) -> None:
    sealed = seal_bid(bw, 0)
    commit(bw, 0, sealed, upload(bw, 0, sealed), key="k-1")
    other = seal_bid(bw, 0, price="4000000.00")
    up2 = upload(bw, 0, other)
    refuse("idempotency_key_reused", commit, bw, 0, other, up2, key="k-1")
    # the second upload is kept (it can still be committed with a fresh key)
    assert get_storage().exists(up2.storage_key)
    assert commit(bw, 0, other, up2, key="k-2").bid.upload_id == up2.id


def test_new_bid_supersedes_the_current_one_and_only_latest_counts(bw: BidWorld) -> None:
    first = submit(bw, 0).bid
    second = submit(bw, 0, price="4500000.00").bid
    submit(bw, 1)
    assert first.state is BidState.SUPERSEDED and not first.is_current
    assert first.superseded_by_id == second.id
    assert second.is_current
    assert services.count_current_bids(bw.section) == 2
    db.get_session().commit()
    db.end_scope()  # runs the after-commit deletion of the superseded ciphertext
    s = db.get_session()
    first = s.get(Bid, first.id)
    assert first is not None and first.ciphertext_deleted_at is not None
    assert not get_storage().exists(first.storage_key)
    assert get_storage().exists(second.storage_key)


def test_one_current_bid_per_bidder_is_enforced_by_the_database(bw: BidWorld) -> None:
    bid = submit(bw, 0).bid
    s = db.get_session()
    s.commit()
    clone = Bid(
        **{
            c.key: getattr(bid, c.key)
            for c in Bid.__table__.columns
            if c.key not in {"id", "upload_id", "client_key"}
        },
        upload_id=bid.upload_id,
        client_key="other",
    )
    s.add(clone)
    with pytest.raises(Exception, match="UNIQUE"):
        s.flush()
    s.rollback()


def test_withdraw_before_deadline(bw: BidWorld) -> None:
    bid = submit(bw, 0).bid
    services.withdraw_bid(bw.rep(0), bid)
    assert bid.state is BidState.WITHDRAWN and not bid.is_current
    assert bid.withdrawn_by_id == bw.rep(0).id
    assert services.count_current_bids(bw.section) == 0
    events = db.get_session().scalars(select(AuditEvent.action)).all()
    assert "bid.withdrawn" in events
    # withdrawing again is an invalid transition
    refuse("invalid_transition", services.withdraw_bid, bw.rep(0), bid)


def test_withdraw_refusals(bw: BidWorld, frozen_clock: Clock) -> None:
    bid = submit(bw, 0).bid
    refuse("forbidden", services.withdraw_bid, bw.rep(1), bid)
    frozen_clock.move(timedelta(days=60))
    refuse("bid_deadline_passed", services.withdraw_bid, bw.rep(0), bid)


# --------------------------------------------------------------------------- envelope refusals


def test_wrong_section(bw: BidWorld) -> None:
    sealed = seal_bid(bw, 0, section_id=str(uuid.uuid4()))
    up = upload(bw, 0, sealed)
    refuse("bid_wrong_section", commit, bw, 0, sealed, up)
    assert_refused_and_deleted("bid_wrong_section", up)


def test_manifest_for_another_section(bw: BidWorld) -> None:
    sealed = seal_bid(bw, 0, tamper_manifest={"section_id": "another-section"})
    up = upload(bw, 0, sealed)
    refuse("bid_wrong_section", commit, bw, 0, sealed, up)


def test_stale_opening_key(bw: BidWorld) -> None:
    old = X25519PrivateKey.generate().public_key()
    sealed = seal_bid(bw, 0, opening_key=old, fingerprint=public_key_fingerprint(old))
    up = upload(bw, 0, sealed)
    refuse("bid_stale_opening_key", commit, bw, 0, sealed, up)
    assert_refused_and_deleted("bid_stale_opening_key", up)


def test_right_fingerprint_but_not_sealed_to_the_opening_key(bw: BidWorld) -> None:
    sealed = seal_bid(bw, 0, opening_key=X25519PrivateKey.generate().public_key())
    up = upload(bw, 0, sealed)
    refuse("bid_stale_opening_key", commit, bw, 0, sealed, up)


def _multipart_upload(bw: BidWorld, i: int, sealed: Any) -> BidUpload:
    """An upload whose bytes went straight to the store (what a presigned part URL does)."""
    ticket = services.start_upload(
        bw.rep(i), bw.section, size=sealed.size, sha256=sealed.sha256, client_key=uuid.uuid4().hex
    )
    up = ticket.upload
    get_storage().put_part(
        up.storage_key, up.multipart_upload_id, 1, io.BytesIO(sealed.envelope), length=sealed.size
    )
    return up


def _with_bytes(sealed: Any, envelope: bytes) -> Any:
    sealed.envelope = envelope
    sealed.manifest["ciphertext_sha256"] = hashlib.sha256(envelope).hexdigest()
    sealed.manifest["ciphertext_size"] = len(envelope)
    return sealed


def test_unencrypted_file(bw: BidWorld) -> None:
    """Streamed: refused on the way in; multipart: refused at the commit (read back)."""
    sealed = _with_bytes(seal_bid(bw, 0), b"PK\x03\x04 a plain zip, not sealed" * 10)
    refuse("bid_not_encrypted", upload, bw, 0, sealed)
    assert _bid_keys() == [] and db.get_session().scalar(select(BidUpload.id)) is None
    up = _multipart_upload(bw, 0, sealed)
    refuse("bid_not_encrypted", commit, bw, 0, sealed, up)
    assert_refused_and_deleted("bid_not_encrypted", up)


def test_truncated_envelope_structure(bw: BidWorld) -> None:
    sealed = _with_bytes(seal_bid(bw, 0), seal_bid(bw, 0).envelope[:-30])
    err = refuse("bid_envelope_invalid", upload, bw, 0, sealed)
    assert err.details["crypto_code"] == "envelope_truncated"
    assert _bid_keys() == []
    up = _multipart_upload(bw, 0, sealed)
    err = refuse("bid_envelope_invalid", commit, bw, 0, sealed, up)
    assert err.details["crypto_code"] == "envelope_truncated"
    assert_refused_and_deleted("bid_envelope_invalid", up)


def test_hash_mismatch(bw: BidWorld) -> None:
    sealed = seal_bid(bw, 0, tamper_manifest={"ciphertext_sha256": "ab" * 32})
    up = upload(bw, 0, sealed)
    refuse("bid_hash_mismatch", commit, bw, 0, sealed, up)
    assert_refused_and_deleted("bid_hash_mismatch", up)


def test_commitment_mismatch(bw: BidWorld) -> None:
    sealed = seal_bid(bw, 0, tamper_manifest={"data_key_commitment": "cd" * 32})
    up = upload(bw, 0, sealed)
    refuse("bid_manifest_mismatch", commit, bw, 0, sealed, up)


def test_malformed_manifest(bw: BidWorld) -> None:
    sealed = seal_bid(bw, 0)
    sealed.manifest = {**sealed.manifest, "extra": 1}
    up = upload(bw, 0, sealed)
    refuse("bid_manifest_invalid", commit, bw, 0, sealed, up)


# --------------------------------------------------------------------------- identity refusals


def test_wrong_bidder_in_manifest(bw: BidWorld) -> None:
    # bidder 0 submits a manifest naming bidder 1, signed with bidder 1's certificate
    one = bw.cert(1)
    sealed = seal_bid(
        bw, 0, bidder_code=bw.org(1).credit_code, signer=(one.private_key, one.certificate)
    )
    up = upload(bw, 0, sealed)
    refuse("bid_wrong_bidder", commit, bw, 0, sealed, up)


def test_certificate_of_another_organisation(bw: BidWorld) -> None:
    one = bw.cert(1)
    sealed = seal_bid(bw, 0, signer=(one.private_key, one.certificate))
    up = upload(bw, 0, sealed)
    refuse("bid_signer_mismatch", commit, bw, 0, sealed, up)


def test_another_bidder_cannot_commit_my_upload(bw: BidWorld) -> None:
    sealed = seal_bid(bw, 0)
    up = upload(bw, 0, sealed)
    refuse("not_found", commit, bw, 1, sealed, up)
    assert get_storage().exists(up.storage_key)  # not theirs to delete


def test_unknown_certificate(bw: BidWorld) -> None:
    ca_key = pki.generate_key("p256")
    start = now() - timedelta(days=1)
    ca = pki.create_root_ca(
        "Rogue CA", ca_key, not_before=start, not_after=start + timedelta(days=99)
    )
    key = pki.generate_key("p256")
    cert = pki.issue_certificate(
        ca,
        ca_key,
        "rogue",
        key.public_key(),
        role="bidder",
        not_before=start,
        not_after=start + timedelta(days=30),
        org_code=bw.org(0).credit_code,
    )
    sealed = seal_bid(bw, 0, signer=(key, cert))
    up = upload(bw, 0, sealed)
    refuse("certificate_untrusted", commit, bw, 0, sealed, up)
    assert_refused_and_deleted("certificate_untrusted", up)


def test_expired_certificate(bw: BidWorld) -> None:
    old = demo_issue_bidder_certificate(
        bw.org(0), not_before=now() - timedelta(days=400), not_after=now() - timedelta(days=1)
    )
    sealed = seal_bid(bw, 0, signer=(old.private_key, old.certificate))
    up = upload(bw, 0, sealed)
    refuse("certificate_expired", commit, bw, 0, sealed, up)


def test_revoked_certificate(bw: BidWorld) -> None:
    cert = bw.cert(0)
    demo_revoke_certificate(cert.certificate, at=now() - timedelta(hours=1))
    sealed = seal_bid(bw, 0)
    up = upload(bw, 0, sealed)
    refuse("certificate_revoked", commit, bw, 0, sealed, up)
    assert_refused_and_deleted("certificate_revoked", up)


def test_bad_signature(bw: BidWorld) -> None:
    sealed = seal_bid(bw, 0)
    sealed.signature = bytes([sealed.signature[0] ^ 1]) + sealed.signature[1:]
    up = upload(bw, 0, sealed)
    refuse("bid_signature_invalid", commit, bw, 0, sealed, up)


def test_garbage_certificate(bw: BidWorld) -> None:
    sealed = seal_bid(bw, 0)
    sealed.chain = ["-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"]
    up = upload(bw, 0, sealed)
    refuse("certificate_invalid", commit, bw, 0, sealed, up)


# --------------------------------------------------------------------------- section refusals


def test_not_registered(app: Any, frozen_clock: Clock) -> None:
    bw = make_bid_world(register=2)
    sealed = seal_bid(bw, 3)
    refuse("not_registered", upload, bw, 3, sealed)


def test_registration_gone_before_the_commit_is_refused(bw: BidWorld) -> None:
    """The decision's registration lock finds none: refused as never registered."""
    from bidding.projects.models import Registration

    sealed = seal_bid(bw, 0)
    up = upload(bw, 0, sealed)
    s = db.get_session()
    s.delete(s.scalars(select(Registration).where(Registration.bidder_id == up.bidder_id)).one())
    s.flush()
    refuse("not_registered", commit, bw, 0, sealed, up)


def test_non_bidder_cannot_upload(bw: BidWorld) -> None:
    sealed = seal_bid(bw, 0)
    refuse(
        "forbidden",
        services.upload_bid_stream,
        bw.world.staff,
        bw.section,
        io.BytesIO(sealed.envelope),
        sealed.size,
        sha256=sealed.sha256,
        client_key="x",
    )


def test_upload_after_deadline(bw: BidWorld, frozen_clock: Clock) -> None:
    sealed = seal_bid(bw, 0)
    frozen_clock.move(timedelta(days=60))
    refuse("bid_deadline_passed", upload, bw, 0, sealed)
    assert _bid_keys() == []


def test_upload_finished_before_but_committed_after_deadline(
    bw: BidWorld, frozen_clock: Clock
) -> None:
    sealed = seal_bid(bw, 0)
    up = upload(bw, 0, sealed)
    assert bw.section.bid_deadline is not None
    frozen_clock.freeze(bw.section.bid_deadline)  # exactly at the deadline is late
    refuse("bid_deadline_passed", commit, bw, 0, sealed, up)
    assert_refused_and_deleted("bid_deadline_passed", up)


def test_cancelled_section(bw: BidWorld) -> None:
    sealed = seal_bid(bw, 0)
    up = upload(bw, 0, sealed)
    project_services.cancel_section(bw.world.agent, bw.section, "项目取消，终止招标")
    refuse("section_not_published", commit, bw, 0, sealed, up)


# --------------------------------------------------------------------------- uploads


def test_truncated_stream_leaves_nothing(bw: BidWorld) -> None:
    sealed = seal_bid(bw, 0)
    refuse(
        "upload_incomplete",
        services.upload_bid_stream,
        bw.rep(0),
        bw.section,
        io.BytesIO(sealed.envelope[:-100]),
        sealed.size,
        sha256=sealed.sha256,
        client_key="t",
    )
    assert _bid_keys() == []
    assert db.get_session().scalar(select(BidUpload.id)) is None


def test_longer_than_declared_leaves_nothing(bw: BidWorld) -> None:
    sealed = seal_bid(bw, 0)
    refuse(
        "upload_too_large",
        services.upload_bid_stream,
        bw.rep(0),
        bw.section,
        io.BytesIO(sealed.envelope + b"x"),
        sealed.size,
        sha256=sealed.sha256,
        client_key="t",
    )
    assert _bid_keys() == []


def test_over_the_stream_limit(bw: BidWorld) -> None:
    refuse(
        "upload_too_large",
        services.upload_bid_stream,
        bw.rep(0),
        bw.section,
        io.BytesIO(b""),
        services.stream_max_bytes() + 1,
        sha256="00" * 32,
        client_key="t",
    )
    assert _bid_keys() == []


def test_checksum_mismatch_on_upload(bw: BidWorld) -> None:
    sealed = seal_bid(bw, 0)
    refuse(
        "checksum_mismatch",
        services.upload_bid_stream,
        bw.rep(0),
        bw.section,
        io.BytesIO(sealed.envelope),
        sealed.size,
        sha256="00" * 32,
        client_key="t",
    )
    assert _bid_keys() == []


def test_stream_upload_rolled_back_leaves_no_object(bw: BidWorld) -> None:
    s = db.get_session()
    s.commit()
    up = upload(bw, 0, seal_bid(bw, 0))
    assert get_storage().exists(up.storage_key)
    s.rollback()  # e.g. the request failed after the upload
    assert not get_storage().exists(up.storage_key)


def test_stream_upload_retry_returns_same_upload(bw: BidWorld) -> None:
    sealed = seal_bid(bw, 0)
    first = upload(bw, 0, sealed, key="u-1")
    again = upload(bw, 0, sealed, key="u-1")
    assert again.id == first.id
    other = seal_bid(bw, 0, price="1.00")
    refuse("idempotency_key_reused", upload, bw, 0, other, key="u-1")


def test_multipart_upload_resume_and_commit(bw: BidWorld) -> None:
    sealed = seal_bid(bw, 0)
    storage = get_storage()
    ticket = services.start_upload(
        bw.rep(0), bw.section, size=sealed.size, sha256=sealed.sha256, client_key="m-1"
    )
    assert [n for n, _ in ticket.part_urls] == [1] and ticket.done_parts == []
    up = ticket.upload
    # committing before the parts arrived: refused, the upload is kept for resuming
    refuse("bid_upload_incomplete", commit, bw, 0, sealed, up)
    db.get_session().refresh(up)
    assert up.state is UploadState.OPEN
    storage.put_part(  # what the presigned part URL does
        up.storage_key, up.multipart_upload_id, 1, io.BytesIO(sealed.envelope), length=sealed.size
    )
    again = services.start_upload(
        bw.rep(0), bw.section, size=sealed.size, sha256=sealed.sha256, client_key="m-1"
    )
    assert again.upload.id == up.id and again.part_urls == []
    assert [p.part_number for p in again.done_parts] == [1]
    result = commit(bw, 0, sealed, up)
    assert result.bid.storage_key == up.storage_key
    assert up.state is UploadState.COMMITTED


def test_multipart_with_wrong_bytes_is_refused_and_deleted(bw: BidWorld) -> None:
    sealed = seal_bid(bw, 0)
    ticket = services.start_upload(
        bw.rep(0), bw.section, size=sealed.size, sha256=sealed.sha256, client_key="m-1"
    )
    up = ticket.upload
    bad = bytearray(sealed.envelope)
    bad[-1] ^= 1
    get_storage().put_part(
        up.storage_key, up.multipart_upload_id, 1, io.BytesIO(bytes(bad)), length=len(bad)
    )
    refuse("checksum_mismatch", commit, bw, 0, sealed, up)
    assert_refused_and_deleted("checksum_mismatch", up)


def test_abort_upload(bw: BidWorld) -> None:
    up = upload(bw, 0, seal_bid(bw, 0))
    services.abort_upload(bw.rep(0), up)
    assert up.state is UploadState.ABORTED
    assert not get_storage().exists(up.storage_key)


# --------------------------------------------------------------------------- sweep and count


def test_sweep_expires_abandoned_uploads_and_orphans(bw: BidWorld, frozen_clock: Clock) -> None:
    sealed = seal_bid(bw, 0)
    up = upload(bw, 0, sealed)
    ticket = services.start_upload(bw.rep(1), bw.section, size=10, sha256="00" * 32, client_key="m")
    storage = get_storage()
    storage.put_bytes("bids/stray/orphan", b"left by a crash")
    at = max(up.expires_at, ticket.upload.expires_at)
    moved = services.expire_uploads(at + timedelta(days=1))
    assert moved == 3
    assert up.state is UploadState.EXPIRED and ticket.upload.state is UploadState.EXPIRED
    assert _bid_keys() == []
    assert services.expire_uploads(at + timedelta(days=2)) == 0


def test_two_bids_at_deadline_fail_the_section(bw: BidWorld, frozen_clock: Clock) -> None:
    """流标: fewer than 3 current bids when the close sweep runs at the deadline."""
    from bidding.core.tasks import run_sweep

    submit(bw, 0)
    submit(bw, 1)
    withdrawn = submit(bw, 2).bid
    services.withdraw_bid(bw.rep(2), withdrawn)
    db.get_session().commit()
    assert bw.section.bid_deadline is not None
    results = run_sweep(bw.section.bid_deadline)
    assert results is not None and results["projects.close_due_sections"] == 1, results
    assert results["bids.expire_uploads"] >= 0
    from bidding.projects.models import Section

    section = db.get_session().get(Section, bw.section.id)
    assert section is not None and section.state is SectionState.FAILED
    assert "2" in (section.failure_reason or "")


def test_three_bids_close_normally(bw: BidWorld, frozen_clock: Clock) -> None:
    for i in range(3):
        submit(bw, i)
    db.get_session().commit()
    assert bw.section.bid_deadline is not None
    assert project_services.close_due_sections(bw.section.bid_deadline) == 1
    assert bw.section.state is SectionState.CLOSED


# --------------------------------------------------------------------------- visibility


def test_bid_list_is_for_overseers_only(bw: BidWorld) -> None:
    submit(bw, 0)
    assert len(services.bids_of_section(bw.world.staff, bw.section)) == 1
    assert len(services.bids_of_section(bw.world.supervisor, bw.section)) == 1
    for actor in (bw.world.agent, bw.world.tenderer_rep, bw.rep(1)):
        refuse("forbidden", services.bids_of_section, actor, bw.section)


def test_bidder_sees_only_its_own(bw: BidWorld) -> None:
    bid = submit(bw, 0).bid
    assert services.get_bid(bw.rep(0), bw.section, bid.id) is bid
    assert services.get_bid(bw.world.staff, bw.section, bid.id) is bid
    refuse("not_found", services.get_bid, bw.rep(1), bw.section, bid.id)
    refuse("not_found", services.get_bid, bw.world.agent, bw.section, bid.id)
    status = services.bid_status(bw.rep(0), bw.section)
    assert status.current is bid and status.accepting

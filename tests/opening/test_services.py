"""The opening services: start, shares, quorum → decryption, self-open, classification,
the signed record, objections. Eager Celery, SQLite, local storage."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from bidding.core import db
from bidding.core.audit import AuditEvent
from bidding.core.clock import Clock
from bidding.core.errors import DomainError
from bidding.core.signing_key import platform_key
from bidding.core.storage import get_storage
from bidding.opening import services
from bidding.opening.models import (
    OpeningSession,
    OpeningState,
    ResultStatus,
    ShareRelease,
    ShareStatus,
)
from bidding.projects.models import Section, SectionState
from crypto.signing import SignedDocument
from tests.opening.conftest import Emits
from tests.opening.factories import (
    bid_package,
    close,
    commit,
    opening_with_bids,
    price_of,
    share_json,
    store_bid,
)
from tests.projects.factories import World, published_section


def _actions(object_id: object) -> list[str]:
    rows = db.get_session().scalars(
        select(AuditEvent)
        .where(AuditEvent.object_id == str(object_id))
        .order_by(AuditEvent.created_at)
    )
    return [e.action for e in rows]


def _reload(model: type, obj_id: object):  # type: ignore[no-untyped-def]
    return db.get_session().get(model, obj_id)


def _code(exc: pytest.ExceptionInfo[DomainError]) -> str:
    return str(exc.value.code)


# --------------------------------------------------------------------------- start


def test_start_opening_is_idempotent_and_moves_the_section(
    world: World, frozen_clock: Clock
) -> None:
    section, _, session = opening_with_bids(world, frozen_clock)
    assert section.state is SectionState.OPENING
    assert (session.k, session.n) == (2, 3)
    assert session.quorum_deadline == section.bid_deadline + timedelta(minutes=30)
    assert [r.status for r in session.results] == [ResultStatus.PENDING] * 3
    assert services.start_opening(None, section) is session
    assert "opening.started" in _actions(section.id)


def test_sweep_starts_closed_sections_and_fails_too_few(world: World, frozen_clock: Clock) -> None:
    section = published_section(world)
    for i in range(3):
        store_bid(world, section, i)
    close(section, frozen_clock)
    assert services.start_due_openings(frozen_clock.now()) == 1
    assert services.start_due_openings(frozen_clock.now()) == 0
    assert section.state is SectionState.OPENING


def test_start_refused_unless_closed(world: World, frozen_clock: Clock) -> None:
    section = published_section(world)
    with pytest.raises(DomainError) as exc:
        services.start_opening(None, section)
    assert _code(exc) == "invalid_transition"


# --------------------------------------------------------------------------- shares


def test_quorum_decrypts_every_bid_and_publishes_a_signed_record(
    world: World, frozen_clock: Clock, emits: Emits
) -> None:
    section, _, session = opening_with_bids(world, frozen_clock)
    section_id, session_id = section.id, session.id
    services.release_share(world.staff, section, share_json(world, section, world.staff.id))
    commit()
    section = _reload(Section, section_id)
    assert _reload(OpeningSession, session_id).state is OpeningState.WAITING_SHARES
    services.release_share(
        world.supervisor, section, share_json(world, section, world.supervisor.id)
    )
    commit()  # k = 2 reached: the decrypt tasks run (eagerly) after the commit

    session = _reload(OpeningSession, session_id)
    assert session.state is OpeningState.COMPLETED
    assert _reload(Section, section_id).state is SectionState.OPENED
    results = session.results
    assert [r.status for r in results] == [ResultStatus.OPENED] * 3
    assert [price_of(r) for r in results] == [
        Decimal("4650000.00"),
        Decimal("4700000.00"),
        Decimal("4580000.00"),
    ]
    assert all(r.opened_via == "quorum" and r.archived_data_key for r in results)
    # shares erased; the record verifies with the platform key
    assert all(r.sealed_share is None and r.erased_at for r in session.releases)
    signed = SignedDocument.from_dict(session.record)
    signed.verify_with_key(platform_key().public_key)
    doc = signed.document
    assert doc["type"] == "sunbid.opening-record"
    assert [b["bidder_name"] for b in doc["bids"]] == [world.bidders[i].name for i in range(3)]
    assert [b["price"] for b in doc["bids"]] == ["4650000.00", "4700000.00", "4580000.00"]
    assert doc["quorum"]["released_indices"] == [1, 2]
    assert {"share_released", "bid_decrypted", "opening_completed"} <= set(emits.names())
    assert emits.names().count("bid_decrypted") == 3
    assert all(room == f"opening:{section_id}" for _, _, room in emits)


def test_wrong_share_is_refused_recorded_and_does_not_count(
    world: World, frozen_clock: Clock
) -> None:
    section, _, session = opening_with_bids(world, frozen_clock)
    other = json.loads(share_json(world, section, world.supervisor.id))
    other["index"] = 1  # supervisor's value under the staff's index
    with pytest.raises(DomainError) as exc:
        services.release_share(world.staff, section, json.dumps(other).encode())
    assert _code(exc) == "share_invalid" and exc.value.details["index"] == 1
    assert getattr(exc.value, "recorded", False)
    commit()  # the caller commits the recorded refusal
    s = db.get_session()
    rows = list(s.scalars(select(ShareRelease)))
    assert [(r.status, r.sealed_share) for r in rows] == [(ShareStatus.REFUSED, None)]
    assert _reload(OpeningSession, session.id).shares_received == 0
    assert "opening.share_refused" in _actions(session.id)


def test_share_of_another_index_is_refused(world: World, frozen_clock: Clock) -> None:
    section, _, _ = opening_with_bids(world, frozen_clock)
    with pytest.raises(DomainError) as exc:
        services.release_share(
            world.staff, section, share_json(world, section, world.supervisor.id)
        )
    assert _code(exc) == "share_invalid"


def test_malformed_share_is_refused(world: World, frozen_clock: Clock) -> None:
    section, _, _ = opening_with_bids(world, frozen_clock)
    with pytest.raises(DomainError) as exc:
        services.release_share(world.staff, section, b"not a share")
    assert _code(exc) == "share_invalid"


def test_duplicate_share_is_refused(world: World, frozen_clock: Clock) -> None:
    section, _, _ = opening_with_bids(world, frozen_clock)
    data = share_json(world, section, world.staff.id)
    services.release_share(world.staff, section, data)
    with pytest.raises(DomainError) as exc:
        services.release_share(world.staff, section, data)
    assert _code(exc) == "share_already_released"


def test_not_a_custodian_is_forbidden(world: World, frozen_clock: Clock) -> None:
    section, _, _ = opening_with_bids(world, frozen_clock)
    with pytest.raises(DomainError) as exc:
        services.release_share(
            world.bidder_reps[0], section, share_json(world, section, world.staff.id)
        )
    assert _code(exc) == "not_a_custodian" and exc.value.http_status == 403


def test_share_before_the_deadline_is_refused(world: World, frozen_clock: Clock) -> None:
    section = published_section(world)
    with pytest.raises(DomainError) as exc:
        services.release_share(world.staff, section, share_json(world, section, world.staff.id))
    assert _code(exc) == "opening_not_started" and exc.value.http_status == 409


def test_share_after_completion_is_refused(world: World, frozen_clock: Clock) -> None:
    section, _, _ = opening_with_bids(world, frozen_clock)
    services.release_share(world.staff, section, share_json(world, section, world.staff.id))
    services.release_share(
        world.supervisor, section, share_json(world, section, world.supervisor.id)
    )
    commit()
    section = db.get_session().get(Section, section.id)
    with pytest.raises(DomainError) as exc:
        services.release_share(world.agent, section, share_json(world, section, world.agent.id))
    assert _code(exc) == "opening_closed"


def test_share_released_with_key_file_and_passphrase(world: World, frozen_clock: Clock) -> None:
    section, _, _ = opening_with_bids(world, frozen_clock)
    pem = world.custodian_keys[world.staff.id].private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"s3cret-pass"),
    )
    with pytest.raises(DomainError) as exc:
        services.release_share(world.staff, section, private_key_pem=pem, passphrase="wrong")
    assert _code(exc) == "custodian_key_invalid"
    row = services.release_share(
        world.staff, section, private_key_pem=pem, passphrase="s3cret-pass"
    )
    assert row.status is ShareStatus.VALID and row.method == "passphrase"
    # a custodian key that is not the one the share was sealed to
    other = world.custodian_keys[world.agent.id].private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(DomainError) as exc:
        services.release_share(world.supervisor, section, private_key_pem=other)
    assert _code(exc) == "share_invalid"


def test_shares_are_sealed_in_the_database(world: World, frozen_clock: Clock) -> None:
    section, _, _ = opening_with_bids(world, frozen_clock)
    raw = share_json(world, section, world.staff.id)
    row = services.release_share(world.staff, section, raw)
    value = json.loads(raw)["value"]
    assert row.sealed_share is not None
    assert bytes.fromhex(value) not in row.sealed_share and value.encode() not in row.sealed_share


# --------------------------------------------------------------------------- classification


def _quorum(world: World, section: Section) -> None:
    services.release_share(world.staff, section, share_json(world, section, world.staff.id))
    services.release_share(
        world.supervisor, section, share_json(world, section, world.supervisor.id)
    )
    commit()


def test_missing_object_is_withdrawn_others_continue(world: World, frozen_clock: Clock) -> None:
    section, bids, session = opening_with_bids(world, frozen_clock)
    get_storage().delete(bids[1].bid.storage_key)
    _quorum(world, section)
    session = _reload(OpeningSession, session.id)
    statuses = [r.status for r in session.results]
    assert statuses == [ResultStatus.OPENED, ResultStatus.WITHDRAWN, ResultStatus.OPENED]
    evidence = session.results[1].evidence
    assert evidence["fault"] == "storage" and evidence["code"] == "object_not_found"
    assert session.state is OpeningState.COMPLETED
    failure = session.record["document"]["bids"][1]["failure"]
    assert failure["classification"] == "withdrawn"


def test_stored_bytes_differing_from_the_signed_ones_are_withdrawn(
    world: World, frozen_clock: Clock
) -> None:
    section, bids, session = opening_with_bids(world, frozen_clock)
    key = bids[0].bid.storage_key
    data = bytearray(bids[0].envelope)
    data[-30] ^= 1  # a bit flip in the last segment: storage corruption
    storage = get_storage()
    storage.delete(key)
    storage.put_bytes(key, bytes(data))
    _quorum(world, section)
    result = _reload(OpeningSession, session.id).results[0]
    assert result.status is ResultStatus.WITHDRAWN
    assert result.evidence["check"] == "ciphertext_sha256" and result.evidence["fault"] == "storage"


def test_missing_price_sheet_is_revoked(world: World, frozen_clock: Clock) -> None:
    import io
    import zipfile

    section = published_section(world)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("documents/a.pdf", b"%PDF")
    store_bid(world, section, 0, buffer.getvalue())
    store_bid(world, section, 1, b"this is not a zip file at all")
    store_bid(world, section, 2)
    close(section, frozen_clock)
    session = services.start_opening(None, section)
    _quorum(world, section)
    results = _reload(OpeningSession, session.id).results
    assert [r.status for r in results] == [
        ResultStatus.REVOKED,
        ResultStatus.REVOKED,
        ResultStatus.OPENED,
    ]
    assert results[0].evidence["code"] == "price_sheet_missing"
    assert results[1].evidence["code"] == "bid_package_invalid"
    assert {r.evidence["fault"] for r in results[:2]} == {"bidder"}


def test_price_sheet_of_another_bidder_is_revoked(world: World, frozen_clock: Clock) -> None:
    section = published_section(world)
    store_bid(world, section, 0, bid_package(section, world.bidders[1], "4000000.00"))
    store_bid(world, section, 1)
    store_bid(world, section, 2)
    close(section, frozen_clock)
    session = services.start_opening(None, section)
    _quorum(world, section)
    result = _reload(OpeningSession, session.id).results[0]
    assert (
        result.status is ResultStatus.REVOKED and result.evidence["code"] == "price_sheet_invalid"
    )


def test_dishonest_two_key_envelope_is_revoked(world: World, frozen_clock: Clock) -> None:
    """The opening stanza wraps another data key than the committed one."""
    import os

    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    from crypto.envelope import _build_header, _seal_payload

    section = published_section(world)
    pub = X25519PublicKey.from_public_bytes(bytes.fromhex(section.opening_public_key or ""))
    dk = os.urandom(32)
    from crypto.recipients import recipient_key

    header = _build_header(
        dk,
        os.urandom(7),
        1024,
        {"section_id": str(section.id), "opening_key_fingerprint": section.opening_key_fingerprint},
        [recipient_key(pub)],
        None,
        stanza_data_keys=[os.urandom(32)],
    )
    import io

    out = io.BytesIO()
    _seal_payload(
        io.BytesIO(bid_package(section, world.bidders[0], "4650000.00")),
        out,
        header,
        dk,
        None,
        None,
    )
    store_bid(world, section, 0, envelope=out.getvalue())
    store_bid(world, section, 1)
    store_bid(world, section, 2)
    close(section, frozen_clock)
    session = services.start_opening(None, section)
    _quorum(world, section)
    result = _reload(OpeningSession, session.id).results[0]
    assert result.status is ResultStatus.REVOKED
    assert result.evidence["check"] == "key_commitment" and result.evidence["fault"] == "bidder"


def test_classify_failure_table() -> None:
    from bidding.core.storage import ObjectNotFound, StorageUnavailable
    from crypto.envelope_errors import SegmentAuthError

    status, ev = services.classify_failure(
        SegmentAuthError("bad", segment=3), stored_matches_signed=True
    )
    assert (
        status is ResultStatus.REVOKED
        and ev["segment"] == 3
        and ev["check"] == "segment_authentication"
    )
    status, ev = services.classify_failure(
        SegmentAuthError("bad", segment=3), stored_matches_signed=False
    )
    assert status is ResultStatus.WITHDRAWN and ev["fault"] == "storage"
    assert services.classify_failure(ObjectNotFound("k"))[0] is ResultStatus.WITHDRAWN
    assert services.classify_failure(StorageUnavailable())[0] is ResultStatus.WITHDRAWN
    status, ev = services.classify_failure(services.PlatformKeyFailure("opening_key_mismatch", "x"))
    assert status is ResultStatus.WITHDRAWN and ev["fault"] == "platform"
    status, ev = services.classify_failure(RuntimeError("boom"))
    assert status is ResultStatus.WITHDRAWN


# --------------------------------------------------------------------------- self-open


def _to_self_open(world: World, clock: Clock) -> tuple[Section, list, OpeningSession]:  # type: ignore[type-arg]
    section, bids, session = opening_with_bids(world, clock)
    services.release_share(world.staff, section, share_json(world, section, world.staff.id))
    clock.move(timedelta(minutes=31))
    assert services.advance_due_sessions(clock.now()) == 1
    assert session.state is OpeningState.SELF_OPEN_WINDOW
    commit()
    return (
        db.get_session().get(Section, section.id),
        bids,
        db.get_session().get(OpeningSession, session.id),
    )


def test_self_open_refused_while_quorum_window_open(world: World, frozen_clock: Clock) -> None:
    section, bids, _ = opening_with_bids(world, frozen_clock)
    with pytest.raises(DomainError) as exc:
        services.self_open(world.bidder_reps[0], section, bids[0].data_key)
    assert _code(exc) == "self_open_not_allowed"


def test_self_open_after_the_window(world: World, frozen_clock: Clock, emits: Emits) -> None:
    section, bids, session = _to_self_open(world, frozen_clock)
    services.self_open(world.bidder_reps[0], section, bids[0].data_key)
    commit()
    result = _reload(OpeningSession, session.id).results[0]
    assert result.status is ResultStatus.OPENED and result.opened_via == "self"
    assert result.sealed_handover_key is None
    # bidder 1 hands in a wrong key (recorded), then the right one
    section = _reload(Section, section.id)
    with pytest.raises(DomainError) as exc:
        services.self_open(world.bidder_reps[1], section, bytes(32))
    assert _code(exc) == "data_key_invalid" and exc.value.details["attempts_left"] == 2
    commit()
    section = _reload(Section, section.id)
    services.self_open(world.bidder_reps[1], section, bids[1].data_key)
    commit()
    section = _reload(Section, section.id)
    with pytest.raises(DomainError) as exc:
        services.self_open(world.bidder_reps[1], section, bids[1].data_key)
    assert _code(exc) == "bid_already_opened"
    # bidder 2 never opens: revoked when the self-open window ends; the record is published
    frozen_clock.move(timedelta(minutes=31))
    services.advance_due_sessions(frozen_clock.now())
    commit()
    session = _reload(OpeningSession, session.id)
    assert [r.status for r in session.results] == [
        ResultStatus.OPENED,
        ResultStatus.OPENED,
        ResultStatus.REVOKED,
    ]
    assert session.results[2].evidence["code"] == "not_opened_in_window"
    assert session.state is OpeningState.COMPLETED
    assert _reload(Section, section.id).state is SectionState.OPENED
    assert "opening.data_key_refused" in _actions(bids[1].bid.id)


def test_self_open_wrong_keys_revoke_the_bid(world: World, frozen_clock: Clock) -> None:
    section, _, session = _to_self_open(world, frozen_clock)
    for attempt in range(3):
        with pytest.raises(DomainError) as exc:
            services.self_open(world.bidder_reps[2], section, bytes([attempt + 1]) * 32)
        commit()
        section = _reload(Section, section.id)
    assert exc.value.details["revoked"] is True
    result = _reload(OpeningSession, session.id).results[2]
    assert result.status is ResultStatus.REVOKED and result.evidence["code"] == "data_key_invalid"


def test_self_open_by_a_stranger_is_forbidden(world: World, frozen_clock: Clock) -> None:
    section, bids, _ = _to_self_open(world, frozen_clock)
    with pytest.raises(DomainError) as exc:
        services.self_open(world.bidder_reps[3], section, bids[0].data_key)
    assert _code(exc) == "not_in_opening"


def test_self_open_after_its_window_is_refused(world: World, frozen_clock: Clock) -> None:
    section, bids, _ = _to_self_open(world, frozen_clock)
    frozen_clock.move(timedelta(minutes=31))
    with pytest.raises(DomainError) as exc:
        services.self_open(world.bidder_reps[0], section, bids[0].data_key)
    assert _code(exc) == "self_open_not_allowed"


def test_late_quorum_in_the_self_open_window_opens_the_rest(
    world: World, frozen_clock: Clock
) -> None:
    section, _, session = _to_self_open(world, frozen_clock)
    services.release_share(world.agent, section, share_json(world, section, world.agent.id))
    commit()
    session = _reload(OpeningSession, session.id)
    assert session.state is OpeningState.COMPLETED
    assert all(r.status is ResultStatus.OPENED for r in session.results)


# --------------------------------------------------------------------------- hall


def test_sign_in_and_objections(world: World, frozen_clock: Clock, emits: Emits) -> None:
    section, _, _ = opening_with_bids(world, frozen_clock)
    row = services.sign_in(world.bidder_reps[0], section)
    assert row.capacity == "bidder" and services.sign_in(world.bidder_reps[0], section) is row
    assert services.sign_in(world.staff, section).capacity == "center_staff"
    with pytest.raises(DomainError) as exc:
        services.sign_in(world.bidder_reps[3], section)  # no bid in this section
    assert _code(exc) == "not_in_opening"
    with pytest.raises(DomainError) as exc:
        services.raise_objection(world.bidder_reps[0], section, "短")
    assert _code(exc) == "reason_required"
    with pytest.raises(DomainError) as exc:
        services.raise_objection(world.staff, section, "开标时间与公告不一致。")
    assert _code(exc) == "not_in_opening"
    objection = services.raise_objection(
        world.bidder_reps[0], section, "第二家投标人的签到时间晚于截止时间。"
    )
    with pytest.raises(DomainError) as exc:
        services.answer_objection(world.bidder_reps[1], objection, "已核实，签到时间在截止前。")
    assert _code(exc) == "forbidden"
    services.answer_objection(world.agent, objection, "经核实，系统记录的递交时间在截止时间之前。")
    assert objection.answer and objection.answered_by_name
    with pytest.raises(DomainError) as exc:
        services.answer_objection(world.staff, objection, "再次答复的内容。")
    assert _code(exc) == "objection_already_answered"
    state = services.hall_state(world.bidder_reps[0], section)
    assert state["capacity"] == "bidder" and len(state["signed_in"]) == 2
    assert state["objections"][0]["answer"]
    public = services.hall_state(None, section)
    assert "signed_in" not in public and public["state"] == "waiting_shares"
    commit()
    assert {"bidder_signed_in", "objection_raised", "objection_answered"} <= set(emits.names())


def test_objection_before_opening_is_refused(world: World, frozen_clock: Clock) -> None:
    section = published_section(world)
    store_bid(world, section, 0)
    with pytest.raises(DomainError) as exc:
        services.raise_objection(world.bidder_reps[0], section, "开标前的异议内容。")
    assert _code(exc) == "opening_not_started"


def test_record_not_published_until_completion(world: World, frozen_clock: Clock) -> None:
    section, _, _ = opening_with_bids(world, frozen_clock)
    with pytest.raises(DomainError) as exc:
        services.record_document(section)
    assert _code(exc) == "opening_record_not_published"

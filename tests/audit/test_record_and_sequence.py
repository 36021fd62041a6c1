"""Recording events and sequencing them into the signed Merkle log."""

from __future__ import annotations

import json
import os
import stat
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

import pytest
from flask import Flask
from sqlalchemy import func, select

from bidding.core import db
from bidding.core.audit import (
    AuditEvent,
    AuditLogState,
    AuditTreeHead,
    AuditTreeNode,
    deferred_sequencing,
    leaf_bytes,
    record_event,
    sequence_now,
    sequence_pending,
    sweep_sequence,
)
from bidding.core.audit.services import tree_head_of
from bidding.core.clock import Clock
from bidding.core.signing_key import PlatformKey, load_platform_key, verify_with
from crypto import merkle
from tests.audit.conftest import ALICE, record_and_commit, sequence
from tests.conftest import make_settings


def _count(model: type) -> int:
    return db.get_session().scalar(select(func.count()).select_from(model)) or 0


def test_event_recorded_in_a_rolled_back_transaction_leaves_nothing(app: Flask) -> None:
    s = db.get_session()
    event = record_event(ALICE, "user.created", "user", uuid.uuid4(), {"role": "bidder_rep"})
    assert event.leaf_index is None
    assert _count(AuditEvent) == 1  # flushed into the caller's transaction
    s.rollback()
    db.end_scope()  # the after-commit sequencer must not run either
    assert _count(AuditEvent) == 0
    assert _count(AuditTreeHead) == 0


def test_event_fields(app: Flask, frozen_clock: Clock) -> None:
    object_id = uuid.uuid4()

    class Colour(StrEnum):
        RED = "red"

    event = record_event(
        ALICE,
        "bid.committed",
        "bid",
        object_id,
        {
            "amount": Decimal("1234.50"),
            "at": frozen_clock.now(),
            "who": object_id,
            "colour": Colour.RED,
            "ratio": 0.25,
            "count": 3.0,
            "big": 2**60,
            "tags": ("a", "b"),
        },
    )
    assert event.created_at == frozen_clock.now()
    assert event.actor_id == ALICE.id and event.actor_label == "alice"
    assert event.object_id == str(object_id)
    assert event.data == {
        "amount": "1234.50",
        "at": "2026-11-26T08:00:00Z",
        "who": str(object_id),
        "colour": "red",
        "ratio": "0.25",
        "count": 3,
        "big": str(2**60),
        "tags": ["a", "b"],
    }
    system = record_event(None, "sweep.ran", "system", None)
    assert system.actor_id is None and system.actor_label == "system"
    assert system.object_id is None and system.data == {}


@pytest.mark.parametrize(
    "data",
    [{"password": "x"}, {"nested": {"private_key": "x"}}, {"Token": "abc"}, {"ok": object()}],
)
def test_secrets_and_unloggable_data_are_refused(app: Flask, data: dict[str, object]) -> None:
    with pytest.raises((ValueError, TypeError)):
        record_event(ALICE, "user.created", "user", None, data)


@pytest.mark.parametrize(
    ("action", "object_type"), [("", "user"), ("x" * 101, "user"), ("a.b", ""), ("a.b", "x" * 61)]
)
def test_bad_action_or_object_type_is_refused(app: Flask, action: str, object_type: str) -> None:
    with pytest.raises(ValueError):
        record_event(ALICE, action, object_type, None)


def test_sequencing_assigns_consecutive_indices_and_chains_events(
    app: Flask, key: PlatformKey, frozen_clock: Clock
) -> None:
    first = record_and_commit(3)
    frozen_clock.move(timedelta(seconds=1))
    second = record_and_commit(2)
    sequence()
    events = list(db.get_session().scalars(select(AuditEvent).order_by(AuditEvent.leaf_index)))
    assert [e.leaf_index for e in events] == [0, 1, 2, 3, 4]
    assert [e.id for e in events] == [e.id for e in sorted(first, key=lambda e: e.id)] + [
        e.id for e in sorted(second, key=lambda e: e.id)
    ]
    assert events[0].prev_id is None
    assert [e.prev_id for e in events[1:]] == [e.id for e in events[:-1]]
    for e in events:
        assert e.leaf_hash == merkle.leaf_hash(leaf_bytes(e))
        document = json.loads(leaf_bytes(e))
        assert document["leaf_index"] == e.leaf_index and document["id"] == str(e.id)
    heads = list(db.get_session().scalars(select(AuditTreeHead)))
    assert [h.tree_size for h in heads] == [5]
    assert heads[0].root_hash == merkle.root([e.leaf_hash for e in events if e.leaf_hash])

    later = record_and_commit(1)
    sequence()
    assert later[0].leaf_index == 5
    state = db.get_session().get(AuditLogState, 1)
    assert state is not None and state.tree_size == 6 and state.last_event_id == later[0].id


def test_nothing_pending_signs_no_head(app: Flask) -> None:
    s = db.get_session()
    assert sequence_pending(s) is None
    record_and_commit(1)
    assert sequence_pending(s) is not None
    assert sequence_pending(s) is None
    s.commit()
    assert _count(AuditTreeHead) == 1


def test_tree_head_is_signed_by_the_platform_key(app: Flask, key: PlatformKey) -> None:
    record_and_commit(4)
    head = sequence_now(db.get_session())
    assert head is not None
    db.get_session().commit()
    row = db.get_session().scalars(select(AuditTreeHead)).one()
    assert tree_head_of(row) == head
    assert row.key_id == key.fingerprint and row.algorithm == "Ed25519"
    assert verify_with(key.public_key, row.signature, head.signing_payload())
    forged = merkle.TreeHead(head.tree_size + 1, head.root_hash, head.timestamp)
    assert not verify_with(key.public_key, row.signature, forged.signing_payload())
    assert head.timestamp.microsecond % 1000 == 0


def test_head_timestamps_never_go_back(app: Flask, frozen_clock: Clock) -> None:
    record_and_commit(1)
    sequence()
    frozen_clock.move(timedelta(hours=-1))
    record_and_commit(1)
    sequence()
    heads = list(db.get_session().scalars(select(AuditTreeHead).order_by(AuditTreeHead.tree_size)))
    assert heads[1].timestamp == heads[0].timestamp


def test_commit_in_a_unit_of_work_sequences_after_commit(app: Flask) -> None:
    with db.session_scope():
        record_event(ALICE, "a.b", "thing", "1")
        record_event(ALICE, "a.c", "thing", "2")
    # session_scope ran the after-commit sequencer in a transaction of its own
    events = list(db.get_session().scalars(select(AuditEvent).order_by(AuditEvent.leaf_index)))
    assert [e.leaf_index for e in events] == [0, 1]
    assert _count(AuditTreeHead) == 1


def test_sequenced_in_its_own_transaction_needs_no_pass_after_commit(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bidding.core.audit import services as audit_services

    passes: list[int] = []
    original = audit_services.sequence_pending

    def counted(session, **kwargs):  # type: ignore[no-untyped-def]
        passes.append(1)
        return original(session, **kwargs)

    monkeypatch.setattr(audit_services, "sequence_pending", counted)
    with db.session_scope() as s:
        record_event(ALICE, "a.b", "thing", "1")
        assert audit_services.sequence_now(s) is not None  # e.g. a bid receipt's leaf index
    assert len(passes) == 1  # no after-commit pass: nothing of its own was left
    with db.session_scope() as s:
        record_event(ALICE, "a.c", "thing", "2")
        audit_services.sequence_now(s)
        record_event(ALICE, "a.d", "thing", "3")  # recorded after: sequenced after commit
    assert len(passes) == 3
    events = list(db.get_session().scalars(select(AuditEvent).order_by(AuditEvent.leaf_index)))
    assert [e.leaf_index for e in events] == [0, 1, 2]


def test_an_event_left_to_the_next_pass(app: Flask) -> None:
    with db.session_scope():
        quiet = record_event(ALICE, "a.b", "thing", "1", sequence_after_commit=False)
    with db.session_scope() as s:
        assert s.get(AuditEvent, quiet.id).leaf_index is None  # no pass ran for it
        assert _count(AuditTreeHead) == 0
    with db.session_scope():  # the next pass anywhere appends it, before the new one
        loud = record_event(ALICE, "a.c", "thing", "2")
    with db.session_scope() as s:
        assert s.get(AuditEvent, quiet.id).leaf_index == 0
        assert s.get(AuditEvent, loud.id).leaf_index == 1
        assert _count(AuditTreeHead) == 1


def test_after_commit_passes_coalesce_within_a_process(app: Flask) -> None:
    """A request finding another thread of its process sequencing leaves it a note; that
    thread passes again and appends the request's events."""
    from bidding.core.audit import services as audit_services

    assert audit_services._sequencing.acquire(blocking=False)  # a pass in progress
    try:
        with db.session_scope():
            record_event(ALICE, "a.b", "thing", "1")
        # returned at once, leaving the note, without touching the database
        assert audit_services._sequence_again.is_set()
        assert db.get_session().scalars(select(AuditEvent)).one().leaf_index is None
        db.end_scope()
    finally:
        audit_services._sequencing.release()
    # the thread that held it would now see the note and pass again: as it does here
    audit_services._sequence_after_commit()
    assert not audit_services._sequence_again.is_set()
    assert db.get_session().scalars(select(AuditEvent)).one().leaf_index == 0
    assert _count(AuditTreeHead) == 1


def test_deferred_sequencing_runs_the_sequencer_once_at_the_end(app: Flask) -> None:
    with deferred_sequencing():
        for i in range(3):
            with db.session_scope():
                record_event(ALICE, "a.b", "thing", str(i))
            # recorded and committed, but not sequenced after each commit
            assert _count(AuditEvent) == i + 1
            assert _count(AuditTreeHead) == 0
            db.end_scope()
        with deferred_sequencing(), db.session_scope():  # nested: defers to the outer one
            record_event(ALICE, "a.c", "thing", "3")
        assert _count(AuditTreeHead) == 0
        db.end_scope()
    # one sequencer run for all four events: one signed head
    events = list(db.get_session().scalars(select(AuditEvent).order_by(AuditEvent.leaf_index)))
    assert [e.leaf_index for e in events] == [0, 1, 2, 3]
    assert _count(AuditTreeHead) == 1
    db.end_scope()
    with db.session_scope():  # outside the block: sequenced after each commit again
        record_event(ALICE, "a.d", "thing", "4")
    assert _count(AuditTreeHead) == 2


def test_deferred_sequencing_in_an_open_transaction_sequences_after_its_commit(
    app: Flask,
) -> None:
    s = db.get_session()
    with deferred_sequencing():
        record_event(ALICE, "a.b", "thing", "1")
    assert _count(AuditTreeHead) == 0  # not inside the caller's open transaction
    s.commit()
    db.end_scope()
    assert _count(AuditTreeHead) == 1
    db.end_scope()
    with deferred_sequencing():  # nothing recorded: no sequencer run
        pass
    assert _count(AuditTreeHead) == 1


def test_deferred_sequencing_rolled_back_leaves_nothing_to_sequence(app: Flask) -> None:
    with deferred_sequencing(), pytest.raises(RuntimeError), db.session_scope():
        record_event(ALICE, "a.b", "thing", "1")
        raise RuntimeError("boom")
    assert _count(AuditEvent) == 0
    assert _count(AuditTreeHead) == 0


def test_sweep_sequences_leftovers(app: Flask) -> None:
    record_and_commit(3)
    with db.session_scope():
        assert sweep_sequence(datetime.now(UTC)) == 3
    with db.session_scope():
        assert sweep_sequence(datetime.now(UTC)) == 0
    from bidding.core.tasks import registered_sweeps

    assert registered_sweeps()["audit.sequence"] is sweep_sequence


def test_perfect_subtrees_are_stored_for_big_logs(app: Flask) -> None:
    record_and_commit(600)
    sequence()
    nodes = {(n.level, n.node_index) for n in db.get_session().scalars(select(AuditTreeNode))}
    assert nodes == {(8, 0), (8, 1), (9, 0)}


def test_signing_key_is_generated_once_with_0600(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path / "inst")
    key = load_platform_key(settings)
    path = settings.instance_dir / "platform_signing_key.pem"
    assert path.exists() and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_platform_key(settings) is key
    assert len(key.public_raw) == 32 and len(key.fingerprint) == 64
    assert "BEGIN PUBLIC KEY" in key.public_pem
    assert key.verify(key.sign(b"x"), b"x") and not key.verify(key.sign(b"x"), b"y")

    other = make_settings(tmp_path / "other", signing_key_path=str(path))
    assert load_platform_key(other).fingerprint == key.fingerprint
    missing = make_settings(tmp_path / "m", signing_key_path=str(tmp_path / "nope.pem"))
    with pytest.raises(FileNotFoundError):
        load_platform_key(missing)

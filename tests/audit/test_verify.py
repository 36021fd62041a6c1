"""``verify_log`` / ``sunbid audit verify``: a clean log passes, tampering is named."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Flask
from sqlalchemy import select, text

from bidding.core import db
from bidding.core.audit import AuditEvent, AuditTreeHead, run_verify, verify_log
from bidding.core.audit.verify import (
    ALTERED,
    BAD_SIGNATURE,
    HEAD_MISMATCH,
    MISSING,
    NODE_MISMATCH,
    REORDERED,
    STATE_MISMATCH,
    UNSIGNED,
)
from crypto import merkle
from tests.audit.conftest import record_and_commit, sequence


def _log(batches: tuple[int, ...] = (3, 4, 5)) -> list[AuditEvent]:
    events: list[AuditEvent] = []
    for n in batches:
        record_and_commit(n)
        sequence()
    s = db.get_session()
    events = list(s.scalars(select(AuditEvent).order_by(AuditEvent.leaf_index)))
    s.commit()
    return events


def _sql(statement: str, **params: object) -> None:
    s = db.get_session()
    s.execute(text(statement), params)
    s.commit()
    s.expunge_all()


def _uid(value: uuid.UUID) -> str:
    """How the Uuid type stores ids on SQLite (32 hex digits)."""
    return value.hex


def _verify() -> tuple[bool, str, Any]:
    s = db.get_session()
    report = verify_log(s)
    s.rollback()
    return report.ok, report.summary(), report.problem


def test_clean_log_passes(app: Flask) -> None:
    events = _log()
    report = verify_log(db.get_session())
    assert report.ok, report.summary()
    assert report.event_count == 12 and report.heads_checked == 3
    assert report.root_hash == merkle.root([e.leaf_hash for e in events if e.leaf_hash])
    lines: list[str] = []
    assert run_verify(lines.append) == 0
    assert lines[0].startswith(f"audit log OK: 12 events, root {report.root_hash.hex()}, ")
    assert "tree head signed at 20" in lines[0] and lines[0].endswith("Z")


def test_empty_and_pending_logs_pass(app: Flask) -> None:
    lines: list[str] = []
    assert run_verify(lines.append) == 0
    assert lines == [f"audit log OK: 0 events, root {merkle.EMPTY_ROOT.hex()}, no tree head yet"]
    _log((2,))
    record_and_commit(1)
    ok, summary, _ = _verify()
    assert ok and "1 events awaiting sequencing" in summary


def test_altered_event_data_is_named(app: Flask) -> None:
    events = _log()
    victim = events[6]
    _sql(
        "UPDATE audit_events SET data = :d WHERE id = :id",
        d='{"n": 99, "名称": "测试"}',
        id=_uid(victim.id),
    )
    ok, summary, problem = _verify()
    assert not ok
    assert problem.kind == ALTERED and problem.leaf_index == 6 and problem.event_id == victim.id
    assert summary.startswith(f"audit log BROKEN: event #6 {victim.id}: altered")
    lines: list[str] = []
    assert run_verify(lines.append) == 1
    assert lines == [summary]


def test_altered_action_is_named(app: Flask) -> None:
    events = _log()
    _sql("UPDATE audit_events SET action = 'bid.withdrawn' WHERE id = :id", id=_uid(events[0].id))
    _, _, problem = _verify()
    assert problem.kind == ALTERED and problem.event_id == events[0].id


def test_deleted_event_is_named(app: Flask) -> None:
    events = _log()
    _sql("DELETE FROM audit_events WHERE id = :id", id=_uid(events[4].id))
    ok, summary, problem = _verify()
    assert not ok
    assert problem.kind == MISSING and problem.leaf_index == 4 and problem.event_id == events[4].id
    assert summary.startswith(f"audit log BROKEN: event #4 {events[4].id}: missing (deleted)")


def test_deleted_event_with_renumbering_is_named(app: Flask) -> None:
    events = _log()
    _sql("DELETE FROM audit_events WHERE id = :id", id=_uid(events[4].id))
    for i in range(5, 12):
        _sql("UPDATE audit_events SET leaf_index = :n WHERE leaf_index = :o", n=i - 1, o=i)
    _, _, problem = _verify()
    assert problem.kind == MISSING and problem.leaf_index == 4 and problem.event_id == events[4].id


def test_deleted_last_event_is_named(app: Flask) -> None:
    events = _log()
    _sql("DELETE FROM audit_events WHERE id = :id", id=_uid(events[-1].id))
    _, _, problem = _verify()
    assert problem.kind == MISSING and problem.leaf_index == 11
    assert problem.event_id == events[-1].id


def test_swapped_events_are_named(app: Flask) -> None:
    events = _log()
    a, b = events[2], events[5]
    _sql("UPDATE audit_events SET leaf_index = 1000000 WHERE id = :id", id=_uid(a.id))
    _sql("UPDATE audit_events SET leaf_index = 2 WHERE id = :id", id=_uid(b.id))
    _sql("UPDATE audit_events SET leaf_index = 5 WHERE id = :id", id=_uid(a.id))
    ok, summary, problem = _verify()
    assert not ok
    assert problem.kind == REORDERED and problem.leaf_index == 2 and problem.event_id == b.id
    assert summary.startswith(f"audit log BROKEN: event #2 {b.id}: reordered")


def test_consistent_rewrite_is_caught_by_the_signed_head(app: Flask) -> None:
    """Altering an event AND its stored leaf hash still breaks the signed root."""
    events = _log()
    victim = events[8]
    s = db.get_session()
    event = s.get(AuditEvent, victim.id)
    assert event is not None
    event.data = {"n": 1000}
    from bidding.core.audit import leaf_bytes

    event.leaf_hash = merkle.leaf_hash(leaf_bytes(event))
    s.commit()
    _, summary, problem = _verify()
    assert problem.kind == HEAD_MISMATCH and problem.leaf_index == 7
    assert "#7..#11" in summary


def test_forged_head_signature_is_caught(app: Flask) -> None:
    _log()
    s = db.get_session()
    head = s.scalars(select(AuditTreeHead).where(AuditTreeHead.tree_size == 7)).one()
    head.signature = bytes(64)
    s.commit()
    _, summary, problem = _verify()
    assert problem.kind == BAD_SIGNATURE and "size 7" in summary
    head = s.scalars(select(AuditTreeHead).where(AuditTreeHead.tree_size == 7)).one()
    head.key_id = "0" * 64
    s.commit()
    _, summary, problem = _verify()
    assert problem.kind == BAD_SIGNATURE and "unknown key" in summary


def test_events_without_a_head_and_state_drift_are_caught(app: Flask) -> None:
    _log((3,))
    _sql("DELETE FROM audit_tree_heads")
    _, _, problem = _verify()
    assert problem.kind == UNSIGNED and problem.leaf_index == 0


def test_state_row_drift_is_caught(app: Flask) -> None:
    _log((3,))
    _sql("UPDATE audit_log_state SET tree_size = 2")
    _, _, problem = _verify()
    assert problem.kind == STATE_MISMATCH


def test_tampered_subtree_node_is_caught(app: Flask) -> None:
    _log((300,))
    assert _verify()[0]
    _sql("UPDATE audit_tree_nodes SET hash = :h", h=bytes(32))
    _, _, problem = _verify()
    assert problem.kind == NODE_MISMATCH

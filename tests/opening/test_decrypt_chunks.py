"""Decryption in chunks: one task opens several bids, each in its own transaction, with
the audit log sequenced and the completion checked once per chunk. Eager Celery, SQLite."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from bidding.core import db
from bidding.core.audit import AuditEvent, AuditTreeHead
from bidding.core.clock import Clock
from bidding.opening import services, vault
from bidding.opening.models import OpeningSession, OpeningState, ResultStatus
from bidding.projects.models import Section
from tests.opening.conftest import Emits
from tests.opening.factories import commit, opening_with_bids, share_json
from tests.projects.factories import World


def _count(model: type, *where: Any) -> int:
    return db.get_session().scalar(select(func.count()).select_from(model).where(*where)) or 0


def _tasks() -> Any:
    # imported late: importing the tasks module registers the opening's sweeps, and a
    # registration at collection time would put them before the projects' closing sweep
    from bidding.opening import tasks

    return tasks


def _quorum(world: World, frozen_clock: Clock, monkeypatch: pytest.MonkeyPatch, n: int) -> Any:
    queued: list[uuid.UUID] = []
    monkeypatch.setattr(services, "_enqueue_decrypt_many", queued.extend)
    section, _, session = opening_with_bids(world, frozen_clock, n=n)
    services.release_share(world.staff, section, share_json(world, section, world.staff.id))
    services.release_share(
        world.supervisor, section, share_json(world, section, world.supervisor.id)
    )
    commit()
    db.end_scope()
    return queued, session.id


def _finished_elsewhere(monkeypatch: pytest.MonkeyPatch, target: uuid.UUID) -> None:
    """While this worker decrypts ``target``, another one commits its result (the object
    this worker read stays pending in its session)."""
    from sqlalchemy import update

    from bidding.opening.models import OpeningResult

    attempt = services._attempt

    def raced(result: Any, *args: Any) -> Any:
        outcome = attempt(result, *args)
        if result.id == target:
            db.get_session().execute(
                update(OpeningResult)
                .where(OpeningResult.id == target)
                .values(status=ResultStatus.WITHDRAWN, evidence={"code": "elsewhere"})
                .execution_options(synchronize_session=False)
            )
        return outcome

    monkeypatch.setattr(services, "_attempt", raced)


def test_chunks_keep_every_bid_in_order_with_a_small_tail() -> None:
    ids = [uuid.uuid4() for _ in range(200)]
    chunks = services.decrypt_chunks(ids)
    assert [i for c in chunks for i in c] == ids
    assert all(len(c) <= services.DECRYPT_CHUNK for c in chunks)
    assert [len(c) for c in chunks] == [16] * 11 + [8] + [4, 3, 3, 2, 1, 1, 1, 1]
    assert services.decrypt_chunks(ids[:3]) == [ids[0:1], ids[1:2], ids[2:3]]
    assert [len(c) for c in services.decrypt_chunks(ids[:20])] == [4, 4, 3, 3, 2, 1, 1, 1, 1]
    assert services.decrypt_chunks([]) == []


def test_quorum_queues_the_bids_in_chunks(
    world: World, frozen_clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks = _tasks()
    queued: list[list[str]] = []
    monkeypatch.setattr(
        tasks.decrypt_bids, "apply_async", lambda args, kwargs: queued.append(*args)
    )
    section, _, session = opening_with_bids(world, frozen_clock, n=3)
    services.release_share(world.staff, section, share_json(world, section, world.staff.id))
    services.release_share(
        world.supervisor, section, share_json(world, section, world.supervisor.id)
    )
    commit()
    session = db.get_session().get(OpeningSession, session.id)
    assert queued == [[str(r.id)] for r in session.results]


def test_a_failing_bid_leaves_the_others_committed_and_a_redelivery_finishes(
    world: World, frozen_clock: Clock, emits: Emits, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks = _tasks()
    queued: list[uuid.UUID] = []
    monkeypatch.setattr(services, "_enqueue_decrypt_many", queued.extend)
    section, _, session = opening_with_bids(world, frozen_clock, n=3)
    section_id, session_id = section.id, session.id
    services.release_share(world.staff, section, share_json(world, section, world.staff.id))
    services.release_share(
        world.supervisor, section, share_json(world, section, world.supervisor.id)
    )
    commit()
    assert len(queued) == 3
    bad = queued[1]
    heads_before = _count(AuditTreeHead)
    db.end_scope()

    attempt = services._attempt

    def broken(result: Any, *args: Any) -> Any:
        if result.id == bad:
            raise RuntimeError("worker bug")
        return attempt(result, *args)

    monkeypatch.setattr(services, "_attempt", broken)
    with pytest.raises(RuntimeError, match="worker bug"):
        tasks.decrypt_bids([str(i) for i in queued])

    session = db.get_session().get(OpeningSession, session_id)
    by_id = {r.id: r for r in session.results}
    assert [by_id[i].status for i in queued] == [
        ResultStatus.OPENED,
        ResultStatus.PENDING,
        ResultStatus.OPENED,
    ]
    assert session.state is OpeningState.DECRYPTING  # not complete: one bid pending
    assert emits.names().count("bid_decrypted") == 2  # each emitted after its own commit
    # the two results' events were recorded and sequenced by one run after the chunk
    assert _count(AuditEvent, AuditEvent.action == "opening.bid_opened") == 2
    assert _count(AuditEvent, AuditEvent.leaf_index.is_(None)) == 0
    assert _count(AuditTreeHead) == heads_before + 1
    opened_at = {i: by_id[i].decrypted_at for i in queued if i != bad}
    db.end_scope()

    # redelivery (acks_late) of the whole chunk: the opened bids are skipped
    monkeypatch.setattr(services, "_attempt", attempt)
    statuses = tasks.decrypt_bids([str(i) for i in queued])
    assert set(statuses.values()) == {"opened"}
    session = db.get_session().get(OpeningSession, session_id)
    assert session.state is OpeningState.COMPLETED
    assert db.get_session().get(Section, section_id) is not None
    by_id = {r.id: r for r in session.results}
    assert all(by_id[i].decrypted_at == t for i, t in opened_at.items())
    assert _count(AuditEvent, AuditEvent.action == "opening.bid_opened") == 3
    assert _count(AuditEvent, AuditEvent.leaf_index.is_(None)) == 0
    assert emits.names().count("bid_decrypted") == 3
    assert emits.names().count("opening_completed") == 1


def test_hash_thread_is_off_unless_set(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = app.extensions["sunbid_settings"]
    assert services._hash_thread() is False
    on = dataclasses.replace(settings, extra={**settings.extra, "opening_hash_thread": "true"})
    monkeypatch.setitem(app.extensions, "sunbid_settings", on)
    assert services._hash_thread() is True


def test_a_bid_finished_elsewhere_meanwhile_is_not_written_again(
    world: World, frozen_clock: Clock, emits: Emits, monkeypatch: pytest.MonkeyPatch
) -> None:
    queued, _session_id = _quorum(world, frozen_clock, monkeypatch, 3)
    target = queued[0]
    _finished_elsewhere(monkeypatch, target)
    with db.session_scope():
        result = services.decrypt_result(target, complete=False)
        assert result is not None
        assert result.status is ResultStatus.WITHDRAWN  # theirs, re-read
        assert result.evidence == {"code": "elsewhere"}
        assert result.archived_data_key is None
    assert _count(AuditEvent, AuditEvent.action.like("opening.bid_%")) == 0
    assert "bid_decrypted" not in emits.names()
    vault.forget_opening_key()  # the opening stays incomplete: drop this process's key


def test_a_chunk_is_read_once_and_written_in_one_transaction(
    world: World, frozen_clock: Clock, emits: Emits, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import event

    tasks = _tasks()
    queued, session_id = _quorum(world, frozen_clock, monkeypatch, 3)
    statements: list[str] = []
    engine = db.get_engine()

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()[:3]).upper())

    event.listen(engine, "before_cursor_execute", seen)
    try:
        statuses = tasks.decrypt_bids([str(i) for i in queued])
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert set(statuses.values()) == {"opened"}
    # the task's first transaction is the chunk's: one read of the three results, then in
    # a savepoint one locking read, one UPDATE (executemany) and one INSERT of the three
    # audit events — whatever the number of bids (then the completion check and the audit
    # sequencer, in transactions of their own)
    chunk_tx = statements[: statements.index("BEGIN", 1)]
    assert chunk_tx.count("SAVEPOINT SA_SAVEPOINT_1") == 1
    assert statements.count("UPDATE OPENING_RESULTS SET") == 1
    assert chunk_tx.count("INSERT INTO AUDIT_EVENTS") == 1
    assert chunk_tx.count("UPDATE OPENING_RESULTS SET") == 1
    assert _count(AuditEvent, AuditEvent.action == "opening.bid_opened") == 3
    assert _count(AuditEvent, AuditEvent.leaf_index.is_(None)) == 0
    assert emits.names().count("bid_decrypted") == 3  # after the commit
    session = db.get_session().get(OpeningSession, session_id)
    assert session.state is OpeningState.COMPLETED  # the chunk held the last bids


def test_a_result_that_cannot_be_written_leaves_the_others_committed(
    world: World, frozen_clock: Clock, emits: Emits, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bidding.opening.models import OpeningResult

    tasks = _tasks()
    queued, _session_id = _quorum(world, frozen_clock, monkeypatch, 3)
    bad = queued[1]
    values = services._result_values

    def broken(result: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        out = values(result, *args, **kwargs)
        if result.id == bad:  # "opened" without a price sheet: the CHECK refuses it (as
            out["price_sheet"] = None  # SQL NULL: JSON null would have passed it)
        return out

    monkeypatch.setattr(services, "_result_values", broken)
    with pytest.raises(Exception, match=r"opened_has_price_sheet|CHECK constraint"):
        tasks.decrypt_bids([str(i) for i in queued])
    statuses = {
        r.id: r.status
        for r in db.get_session().scalars(select(OpeningResult).where(OpeningResult.id.in_(queued)))
    }
    assert [statuses[i] for i in queued] == [
        ResultStatus.OPENED,
        ResultStatus.PENDING,
        ResultStatus.OPENED,
    ]
    assert _count(AuditEvent, AuditEvent.action == "opening.bid_opened") == 2
    assert _count(AuditEvent, AuditEvent.leaf_index.is_(None)) == 0
    assert emits.names().count("bid_decrypted") == 2
    vault.forget_opening_key()


def test_a_chunk_does_not_overwrite_a_result_finished_elsewhere(
    world: World, frozen_clock: Clock, emits: Emits, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bidding.opening.models import OpeningResult

    queued, _session_id = _quorum(world, frozen_clock, monkeypatch, 3)
    target = queued[0]
    _finished_elsewhere(monkeypatch, target)
    with db.session_scope():
        chunk = services.decrypt_results(queued)
    assert chunk.statuses == {
        queued[0]: ResultStatus.WITHDRAWN,
        queued[1]: ResultStatus.OPENED,
        queued[2]: ResultStatus.OPENED,
    }
    theirs = db.get_session().get(OpeningResult, target)
    assert theirs.evidence == {"code": "elsewhere"} and theirs.archived_data_key is None
    assert _count(AuditEvent, AuditEvent.action.like("opening.bid_%")) == 2
    assert emits.names().count("bid_decrypted") == 2
    vault.forget_opening_key()

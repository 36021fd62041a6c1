"""Concurrent writers and sequencers on PostgreSQL: no index twice, no gap, one lock."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bidding.core import db
from bidding.core.audit import (
    AuditEvent,
    AuditTreeHead,
    record_event,
    sequence_pending,
    verify_log,
)
from tests.audit.conftest import ALICE
from tests.conftest import build_app, make_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def pg_app(postgres_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    app = build_app(make_settings(tmp_path / "instance", database_url=postgres_url))
    with app.app_context():
        yield app


def _commit_events(count: int, tag: str) -> None:
    with db.session_scope():
        for i in range(count):
            record_event(ALICE, "load.write", "thing", f"{tag}-{i}", {"i": i})


def test_concurrent_writers_and_sequencers(pg_app: object) -> None:
    writers, per_writer = 6, 12
    errors: list[BaseException] = []
    start = threading.Barrier(writers + 2)

    def writer(t: int) -> None:
        try:
            start.wait()
            for i in range(per_writer):
                # each commit triggers the after-commit sequencer in this thread
                _commit_events(2, f"{t}-{i}")
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.session.remove()

    def sequencer() -> None:
        try:
            start.wait()
            for _ in range(25):
                with db.session_scope() as s:
                    sequence_pending(s, wait=True)
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.session.remove()

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(writers)]
    threads += [threading.Thread(target=sequencer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors

    with db.session_scope() as s:
        sequence_pending(s)
    with db.session_scope() as s:
        total = writers * per_writer * 2
        indices = list(s.scalars(select(AuditEvent.leaf_index).order_by(AuditEvent.leaf_index)))
        assert indices == list(range(total))
        sizes = list(s.scalars(select(AuditTreeHead.tree_size).order_by(AuditTreeHead.timestamp)))
        assert sizes == sorted(sizes) and sizes[-1] == total
        report = verify_log(s)
        assert report.ok, report.summary()
        assert report.event_count == total


def test_second_sequencer_waits_for_the_row_lock(pg_app: object) -> None:
    _commit_events(3, "a")  # sequenced after commit: size 3
    with db.session_scope() as s:
        record_event(ALICE, "load.write", "thing", "b", None)
        s.info.pop("pending_callbacks")  # left pending
    holder = db.SessionFactory()
    try:
        head = sequence_pending(holder)  # holds the state-row lock until commit
        assert head is not None and head.tree_size == 4
        _commit_events(2, "c")  # the after-commit sequencer skips: the row is locked
        with db.SessionFactory() as other:
            assert sequence_pending(other, wait=False) is None
            other.rollback()

        result: dict[str, object] = {}

        def blocked() -> None:
            with db.session_scope() as s:
                began = time.monotonic()
                new_head = sequence_pending(s, wait=True)
                result["waited"] = time.monotonic() - began
                result["size"] = new_head.tree_size if new_head else None
            db.session.remove()

        thread = threading.Thread(target=blocked)
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive()  # waiting on the lock
        holder.commit()
    finally:
        holder.close()
    thread.join(30)
    assert result["size"] == 6 and float(result["waited"]) >= 0.4  # type: ignore[arg-type]
    with db.session_scope() as s:
        assert s.scalar(select(func.count()).select_from(AuditTreeHead)) == 3
        assert verify_log(s).ok

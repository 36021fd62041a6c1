"""The audit listener hook (bidding.core.audit.services.add_listener / on_event): listeners
run for their action only, see the flushed event, and share the recording transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import func, select

from bidding.core import db
from bidding.core.audit.models import AuditEvent
from bidding.core.audit.services import add_listener, on_event, record_event, remove_listener
from bidding.core.roles import Actor

ACTOR = Actor(id=uuid.uuid4(), username="alice")


@pytest.fixture
def seen(app: Flask) -> Iterator[list[tuple[str, bool]]]:
    calls: list[tuple[str, bool]] = []

    def listener(event: AuditEvent) -> None:
        s = db.get_session()
        flushed = s.scalar(select(AuditEvent.id).where(AuditEvent.id == event.id)) is not None
        calls.append((event.action, flushed))

    add_listener("test.watched", listener)
    add_listener("test.watched", listener)  # registered once per pair
    yield calls
    remove_listener("test.watched", listener)
    remove_listener("test.watched", listener)  # absent: no-op


def _events(action: str) -> int:
    return int(
        db.get_session().scalar(
            select(func.count(AuditEvent.id)).where(AuditEvent.action == action)
        )
        or 0
    )


def test_listener_runs_once_for_its_action_after_the_flush(seen: list[tuple[str, bool]]) -> None:
    record_event(ACTOR, "test.other", "thing", "1")
    assert seen == []
    record_event(ACTOR, "test.watched", "thing", "1", {"n": 1})
    assert seen == [("test.watched", True)]


def test_removed_listener_is_not_called(app: Flask) -> None:
    calls: list[str] = []

    @on_event("test.a", "test.b")
    def listener(event: AuditEvent) -> None:
        calls.append(event.action)

    record_event(ACTOR, "test.a", "thing", "1")
    record_event(ACTOR, "test.b", "thing", "1")
    remove_listener("test.a", listener)
    record_event(ACTOR, "test.a", "thing", "1")
    remove_listener("test.b", listener)
    record_event(ACTOR, "test.b", "thing", "1")
    assert calls == ["test.a", "test.b"]


def test_a_failing_listener_fails_the_operation_and_nothing_commits(app: Flask) -> None:
    def boom(event: AuditEvent) -> None:
        raise RuntimeError("listener failed")

    add_listener("test.boom", boom)
    try:
        s = db.get_session()
        with pytest.raises(RuntimeError, match="listener failed"), s.begin_nested():
            record_event(ACTOR, "test.boom", "thing", "1")
        s.commit()
        assert _events("test.boom") == 0
    finally:
        remove_listener("test.boom", boom)

"""Helpers for the audit log tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from flask import Flask

from bidding.core import db
from bidding.core.audit import AuditEvent, record_event, sequence_pending
from bidding.core.signing_key import PlatformKey, platform_key


@dataclass(frozen=True)
class Person:
    id: uuid.UUID
    username: str


ALICE = Person(uuid.UUID("11111111-1111-4111-8111-111111111111"), "alice")


def record_and_commit(count: int, *, action: str = "thing.done") -> list[AuditEvent]:
    """Record ``count`` events in one committed transaction (not yet sequenced)."""
    s = db.get_session()
    events = [
        record_event(ALICE, action, "thing", uuid.uuid4(), {"n": i, "名称": "测试"})
        for i in range(count)
    ]
    s.info.pop("pending_callbacks", None)  # sequence explicitly in these tests
    s.commit()
    return events


def sequence() -> None:
    s = db.get_session()
    sequence_pending(s)
    s.commit()


@pytest.fixture
def key(app: Flask) -> PlatformKey:
    return platform_key()

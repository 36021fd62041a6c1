"""Recording, sequencing and proving audit events.

See the package docstring for the design (why events are sequenced after commit).
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Protocol

from flask_babel import gettext as _
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bidding.core import db
from bidding.core.audit.models import (
    NODE_LEVEL,
    AuditEvent,
    AuditLogState,
    AuditTreeHead,
    AuditTreeNode,
)
from bidding.core.clock import now
from bidding.core.errors import Conflict, ErrorCode, NotFound, RuleViolation
from bidding.core.signing_key import PlatformKey, platform_key
from crypto import merkle
from crypto.canonical import MAX_SAFE_INTEGER, canonical_json, format_utc

log = logging.getLogger(__name__)

__all__ = [
    "Actor",
    "DbLeafSource",
    "EventListener",
    "add_listener",
    "consistency_proof_between",
    "deferred_sequencing",
    "event_by_id",
    "inclusion_proof_for",
    "latest_tree_head",
    "leaf_bytes",
    "on_event",
    "record_event",
    "remove_listener",
    "sequence_now",
    "sequence_pending",
    "sweep_sequence",
    "tree_head_of",
]

LEAF_VERSION = 1
#: Events sequenced per query inside one sequencer run.
BATCH = 1000
SYSTEM_LABEL = "system"
#: Member names that must never appear in event data (secrets stay out of the log).
FORBIDDEN_KEYS = frozenset(
    {
        "password",
        "password_hash",
        "new_password",
        "secret",
        "secret_key",
        "private_key",
        "token",
        "access_token",
        "refresh_token",
        "api_key",
        "share",
        "key_share",
    }
)


class Actor(Protocol):
    """Whoever acts: anything with an ``id`` and a ``username`` (None = the system)."""

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def username(self) -> str: ...


# --------------------------------------------------------------------------- listeners

#: Called by :func:`record_event` with the flushed event, inside the recording transaction.
EventListener = Callable[[AuditEvent], None]

_listeners: dict[str, list[EventListener]] = {}


def add_listener(action: str, listener: EventListener) -> None:
    """Call ``listener`` whenever an event with ``action`` is recorded (once per pair).

    It runs inside the caller's transaction, after the event row is flushed: what it adds
    to the session commits or rolls back with the state change; if it raises, the caller's
    operation fails. It may read the database but must not commit.
    """
    registered = _listeners.setdefault(action, [])
    if listener not in registered:
        registered.append(listener)


def remove_listener(action: str, listener: EventListener) -> None:
    """Undo :func:`add_listener` (no-op if absent)."""
    registered = _listeners.get(action, [])
    if listener in registered:
        registered.remove(listener)


def on_event(*actions: str) -> Callable[[EventListener], EventListener]:
    """Decorator form of :func:`add_listener` for one or more actions."""

    def decorator(listener: EventListener) -> EventListener:
        for action in actions:
            add_listener(action, listener)
        return listener

    return decorator


# --------------------------------------------------------------------------- recording


def _jsonable(value: Any, path: str) -> Any:
    """Turn ``value`` into plain JSON that canonicalises the same after a database round trip."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, Enum):
        return _jsonable(value.value, path)
    if isinstance(value, int):
        return value if abs(value) <= MAX_SAFE_INTEGER else str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) <= MAX_SAFE_INTEGER:
            return int(value)
        return repr(value)
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return format_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"audit data {path}: member names must be strings, got {key!r}")
            if key.lower() in FORBIDDEN_KEYS:
                raise ValueError(f"audit data {path}.{key}: secrets must not be logged")
            out[key] = _jsonable(item, f"{path}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [_jsonable(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, set | frozenset):
        return sorted(_jsonable(item, path) for item in value)
    raise TypeError(f"audit data {path}: {type(value).__name__} is not loggable")


def _new_event(
    actor: Actor | None,
    action: str,
    object_type: str,
    object_id: str | uuid.UUID | None,
    data: Mapping[str, Any] | None,
) -> AuditEvent:
    if not action or len(action) > 100:
        raise ValueError("audit action must be 1..100 characters")
    if not object_type or len(object_type) > 60:
        raise ValueError("audit object_type must be 1..60 characters")
    clean = _jsonable(dict(data or {}), "$")
    canonical_json(clean)  # fail now, in the caller's code, rather than in the sequencer
    return AuditEvent(
        id=uuid.uuid4(),
        created_at=now(),
        actor_id=actor.id if actor is not None else None,
        actor_label=(actor.username if actor is not None else SYSTEM_LABEL)[:200],
        action=action,
        object_type=object_type,
        object_id=str(object_id) if object_id is not None else None,
        data=clean,
    )


def record_event(
    actor: Actor | None,
    action: str,
    object_type: str,
    object_id: str | uuid.UUID | None,
    data: Mapping[str, Any] | None = None,
    *,
    sequence_after_commit: bool = True,
) -> AuditEvent:
    """Record an audit event in the caller's transaction (审计留痕).

    The event is added to ``db.get_session()`` and flushed: if the caller's transaction
    rolls back, the event is gone with it. Once the transaction commits, the event is
    appended to the Merkle log by the sequencer (after the commit, or by the sweep). With
    ``sequence_after_commit=False`` no pass runs after the commit for it: the next pass
    anywhere appends it (every pass appends every pending event), at the latest the
    sweep's — for frequent events that a related action soon sequences anyway (a bid
    upload's start, sequenced by its commit), so that a burst of them does not contend
    for the log with the commits that need it at once.
    ``data`` must be JSON-like; UUIDs, datetimes, dates, decimals and enums are written as
    strings. Secrets (``password``, ``token``, ``private_key`` …) are refused. Listeners
    registered for ``action`` (:func:`add_listener`) run after the flush, in this
    transaction.
    """
    entry = (action, object_type, object_id, data)
    return record_events(actor, [entry], sequence_after_commit=sequence_after_commit)[0]


#: One event for :func:`record_events`: (action, object type, object id, data).
EventEntry = tuple[str, str, str | uuid.UUID | None, Mapping[str, Any] | None]


def record_events(
    actor: Actor | None, entries: Sequence[EventEntry], *, sequence_after_commit: bool = True
) -> list[AuditEvent]:
    """:func:`record_event` for several events of one actor at once (bulk callers, e.g. the
    opening writing a chunk of results in one transaction): every entry is checked before
    any is added; they are inserted by one flush, then each event's listeners run, in the
    order listed. Same transaction rules as :func:`record_event`."""
    events = [_new_event(actor, *entry) for entry in entries]
    if not events:
        return events
    s = db.get_session()
    s.add_all(events)
    s.flush()
    for event in events:
        for listener in tuple(_listeners.get(event.action, ())):
            listener(event)
    if sequence_after_commit:
        _sequence_after_commit_of(s)
    return events


#: Inside :func:`deferred_sequencing`: a one-element list, set True once an event was
#: recorded whose after-commit sequencing was skipped; None outside.
_deferred: ContextVar[list[bool] | None] = ContextVar("audit_deferred_sequencing", default=None)


@contextmanager
def deferred_sequencing() -> Iterator[None]:
    """Batch the sequencing of the events recorded inside (for bulk callers, e.g. a worker
    that commits many short transactions in a row).

    Events are still recorded in the caller's transactions, exactly as without it; only
    the after-commit sequencer (one signed tree head per commit) is skipped inside. When
    the outermost block ends and events were recorded, the sequencer runs once: at once
    if no transaction is open, else after the open one commits. Nested blocks defer to
    the outermost; the sweep catches anything left (e.g. when the block raised).
    """
    if _deferred.get() is not None:
        yield
        return
    flag = [False]
    token = _deferred.set(flag)
    try:
        yield
    finally:
        _deferred.reset(token)
    if flag[0]:
        if db.session.registry.has() and db.session().in_transaction():
            _sequence_after_commit_of(db.session())
        else:
            _sequence_after_commit()


def _sequence_after_commit_of(s: Session) -> None:
    deferred = _deferred.get()
    if deferred is not None:
        deferred[0] = True
        return
    if not db.has_after_commit(_sequence_after_commit, s):
        db.call_after_commit(_sequence_after_commit, s)


#: One after-commit sequencer at a time per process (see :func:`_sequence_after_commit`).
_sequencing = threading.Lock()
_sequence_again = threading.Event()


def _sequence_after_commit() -> None:
    """Append what the committed request recorded; the sweep catches anything missed.

    Coalesced within the process: a request that finds another thread of its process
    sequencing leaves it a note and returns, and that thread runs one more pass, which
    sees the request's committed events. Under a burst the process makes a few passes,
    each appending many events under one signed head, instead of one pass per request
    (the database's ``SKIP LOCKED`` does the same between processes)."""
    _sequence_again.set()
    while _sequence_again.is_set():
        if not _sequencing.acquire(blocking=False):
            return  # the thread holding it passes again once it sees the note
        try:
            _sequence_again.clear()
            with db.session_scope() as s:
                sequence_pending(s, wait=False)
        except Exception:
            log.exception("audit sequencing after commit failed; the sweep will retry")
            return
        finally:
            _sequencing.release()


# --------------------------------------------------------------------------- leaves


def leaf_document(event: AuditEvent) -> dict[str, Any]:
    """The fields of a sequenced event that its leaf commits to."""
    if event.leaf_index is None:
        raise ValueError("event is not sequenced")
    return {
        "v": LEAF_VERSION,
        "leaf_index": event.leaf_index,
        "prev_id": str(event.prev_id) if event.prev_id is not None else None,
        "id": str(event.id),
        "created_at": format_utc(event.created_at),
        "actor_id": str(event.actor_id) if event.actor_id is not None else None,
        "actor_label": event.actor_label,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "data": event.data,
    }


def leaf_bytes(event: AuditEvent) -> bytes:
    """The log entry of ``event``: RFC 8785 canonical JSON of :func:`leaf_document`."""
    return canonical_json(leaf_document(event))


# --------------------------------------------------------------------------- sequencing


def _lock_state(session: Session, wait: bool) -> AuditLogState | None:
    """Lock the state row (creating it once); None if ``wait`` is False and it is busy."""
    if session.get_bind().dialect.name == "sqlite":
        # SQLite has no row locks: a write statement takes the database write lock now
        # (waiting up to busy_timeout), so the read below cannot go stale.
        session.execute(
            update(AuditLogState).where(AuditLogState.id == 1).values(id=1),
            execution_options={"synchronize_session": False},
        )
    stmt = (
        select(AuditLogState)
        .where(AuditLogState.id == 1)
        .with_for_update(skip_locked=not wait)
        .execution_options(populate_existing=True)
    )
    state = session.scalars(stmt).one_or_none()
    if state is not None:
        return state
    exists = session.scalar(select(AuditLogState.id).where(AuditLogState.id == 1))
    if exists is not None:
        return None  # another sequencer holds it (skip_locked)
    try:
        with session.begin_nested():
            session.add(AuditLogState(id=1, tree_size=0, frontier=b""))
    except IntegrityError:
        pass  # created concurrently: lock theirs
    return session.scalars(stmt.with_for_update()).one()


def sequence_pending(
    session: Session, *, wait: bool = True, key: PlatformKey | None = None
) -> merkle.TreeHead | None:
    """Append every visible unsequenced event to the log and sign a new tree head.

    Takes the lock on the ``audit_log_state`` row (concurrent sequencers queue on it),
    gives the pending events consecutive leaf indices in ``(created_at, id)`` order,
    stores their leaf hashes, the new compact-tree frontier and a signed tree head. Returns
    the new head, or None when there was nothing to append (or, with ``wait=False``, when
    another sequencer was busy: it or the next sweep appends our events). Only flushes.
    """
    state = _lock_state(session, wait)
    if state is None:
        return None
    tree = merkle.CompactTree.from_bytes(state.tree_size, state.frontier)
    prev_id = state.last_event_id
    appended = 0
    while True:
        batch = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.leaf_index.is_(None))
            .order_by(AuditEvent.created_at, AuditEvent.id)
            .limit(BATCH)
        ).all()
        for event in batch:
            event.leaf_index = tree.size
            event.prev_id = prev_id
            event.leaf_hash = merkle.leaf_hash(leaf_bytes(event))
            for node in tree.append(event.leaf_hash):
                if node.level >= NODE_LEVEL:
                    session.add(
                        AuditTreeNode(level=node.level, node_index=node.index, hash=node.hash)
                    )
            prev_id = event.id
        appended += len(batch)
        session.flush()
        if len(batch) < BATCH:
            break
    # every event this session flushed is now sequenced in its own transaction: no pass
    # after its commit (an event recorded later queues one again)
    db.cancel_after_commit(_sequence_after_commit, session)
    if not appended:
        return None
    at = merkle.TreeHead.truncate(now())
    if state.last_head_at is not None and at < state.last_head_at:
        at = state.last_head_at  # heads never go back in time
    head = merkle.TreeHead(tree.size, tree.root(), at)
    key = key or platform_key()
    session.add(
        AuditTreeHead(
            tree_size=head.tree_size,
            root_hash=head.root_hash,
            timestamp=head.timestamp,
            algorithm="Ed25519",
            key_id=key.fingerprint,
            signature=key.sign(head.signing_payload()),
        )
    )
    state.tree_size = tree.size
    state.frontier = tree.to_bytes()
    state.last_event_id = prev_id
    state.last_head_at = at
    session.flush()
    return head


def sequence_now(session: Session, key: PlatformKey | None = None) -> merkle.TreeHead | None:
    """Sequence at once, inside the caller's transaction (e.g. to put a leaf index on a
    bid receipt). The state-row lock is then held until that transaction ends, so use it
    only where an index is needed immediately."""
    return sequence_pending(session, wait=True, key=key)


def sweep_sequence(at: datetime) -> int:
    """Sweep handler: sequence whatever is pending; returns how many events were appended."""
    s = db.get_session()
    before = s.scalar(select(AuditLogState.tree_size).where(AuditLogState.id == 1)) or 0
    head = sequence_pending(s, wait=True)
    return head.tree_size - before if head is not None else 0


# --------------------------------------------------------------------------- reading


def tree_head_of(row: AuditTreeHead) -> merkle.TreeHead:
    return merkle.TreeHead(row.tree_size, row.root_hash, row.timestamp)


def latest_tree_head(session: Session) -> AuditTreeHead | None:
    return session.scalars(
        select(AuditTreeHead).order_by(AuditTreeHead.tree_size.desc()).limit(1)
    ).first()


def event_by_id(session: Session, event_id: uuid.UUID) -> AuditEvent:
    event = session.get(AuditEvent, event_id)
    if event is None:
        raise NotFound(_("审计事件不存在。"), details={"event_id": str(event_id)})
    return event


class DbLeafSource:
    """A :class:`crypto.merkle.LeafSource` over the stored leaf hashes and subtree nodes."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def leaf_hashes(self, start: int, end: int) -> Sequence[bytes]:
        rows = self.session.execute(
            select(AuditEvent.leaf_index, AuditEvent.leaf_hash)
            .where(AuditEvent.leaf_index >= start, AuditEvent.leaf_index < end)
            .order_by(AuditEvent.leaf_index)
        ).all()
        hashes = [h for i, h in rows if h is not None]
        if len(hashes) != end - start or any(i != start + n for n, (i, _) in enumerate(rows)):
            raise merkle.MerkleRangeError("stored leaves are missing", start=start, end=end)
        return hashes

    def perfect_subtree(self, level: int, index: int) -> bytes | None:
        if level < NODE_LEVEL:
            return None
        node = self.session.get(AuditTreeNode, (level, index))
        return node.hash if node is not None else None


def _range_error(message: str, **details: Any) -> RuleViolation:
    return RuleViolation(message, code=ErrorCode.AUDIT_RANGE_INVALID, details=details)


def _signed_size(session: Session) -> int:
    head = latest_tree_head(session)
    return head.tree_size if head is not None else 0


def inclusion_proof_for(
    session: Session,
    *,
    leaf_index: int | None = None,
    event_id: uuid.UUID | None = None,
    tree_size: int | None = None,
) -> tuple[int, int, bytes, list[bytes]]:
    """``(leaf_index, tree_size, leaf_hash, audit_path)`` for one sequenced event.

    ``tree_size`` defaults to the latest signed tree head and may be any size from
    ``leaf_index + 1`` up to it. Refusals: ``audit_range_invalid`` (422), ``not_found``
    (404) for an unknown event id, ``audit_event_pending`` (409) for an event not yet
    sequenced.
    """
    if (leaf_index is None) == (event_id is None):
        raise _range_error(_("请指定 leaf_index 或 event_id 之一。"))
    if event_id is not None:
        event = event_by_id(session, event_id)
        if event.leaf_index is None:
            raise Conflict(
                _("该事件尚未记入日志，请稍后重试。"),
                code=ErrorCode.AUDIT_EVENT_PENDING,
                details={"event_id": str(event_id)},
            )
        leaf_index = event.leaf_index
    assert leaf_index is not None
    signed = _signed_size(session)
    size = signed if tree_size is None else tree_size
    if not 0 < size <= signed:
        raise _range_error(
            _("树大小超出已签名的日志范围。"), tree_size=size, signed_tree_size=signed
        )
    if not 0 <= leaf_index < size:
        raise _range_error(_("叶子序号超出树的范围。"), leaf_index=leaf_index, tree_size=size)
    source = DbLeafSource(session)
    proof = merkle.inclusion_proof_from(leaf_index, size, source)
    return leaf_index, size, source.leaf_hashes(leaf_index, leaf_index + 1)[0], proof


def consistency_proof_between(session: Session, first: int, second: int) -> list[bytes]:
    """The consistency proof from tree size ``first`` to ``second`` (both ≤ the latest
    signed size, ``1 <= first <= second``)."""
    signed = _signed_size(session)
    if not 0 < first <= second <= signed:
        raise _range_error(
            _("需满足 1 ≤ first ≤ second ≤ 已签名的树大小。"),
            first=first,
            second=second,
            signed_tree_size=signed,
        )
    return merkle.consistency_proof_from(first, second, DbLeafSource(session))

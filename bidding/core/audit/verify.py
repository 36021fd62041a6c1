"""Verifying the whole audit log from the stored events (``sunbid audit verify``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bidding.core import db
from bidding.core.audit.models import (
    NODE_LEVEL,
    AuditEvent,
    AuditLogState,
    AuditTreeHead,
    AuditTreeNode,
)
from bidding.core.audit.services import leaf_bytes, tree_head_of
from bidding.core.clock import isoformat_z
from bidding.core.signing_key import PlatformKey, platform_key
from crypto import merkle

__all__ = ["Problem", "VerifyReport", "run_verify", "verify_log"]

#: Kinds of problem, in the words the report uses.
ALTERED = "altered"
MISSING = "missing"
REORDERED = "reordered"
HEAD_MISMATCH = "head_mismatch"
BAD_SIGNATURE = "bad_signature"
UNSIGNED = "unsigned"
STATE_MISMATCH = "state_mismatch"
NODE_MISMATCH = "node_mismatch"


@dataclass(frozen=True)
class Problem:
    """The first thing found wrong: where (leaf index, event id) and what."""

    kind: str
    reason: str
    leaf_index: int | None = None
    event_id: uuid.UUID | None = None

    def describe(self) -> str:
        if self.leaf_index is None:
            return self.reason
        who = str(self.event_id) if self.event_id is not None else "(id unknown)"
        return f"event #{self.leaf_index} {who}: {self.reason}"


@dataclass
class VerifyReport:
    """What :func:`verify_log` found."""

    ok: bool
    event_count: int = 0
    root_hash: bytes = merkle.EMPTY_ROOT
    heads_checked: int = 0
    latest_head_size: int | None = None
    latest_head_at: datetime | None = None
    pending: int = 0
    problem: Problem | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.problem is not None:
            return f"audit log BROKEN: {self.problem.describe()}"
        signed = (
            f"tree head signed at {isoformat_z(self.latest_head_at)}"
            if self.latest_head_at is not None
            else "no tree head yet"
        )
        text = f"audit log OK: {self.event_count} events, root {self.root_hash.hex()}, {signed}"
        if self.pending:
            text += f" ({self.pending} events awaiting sequencing)"
        return text


def _events(session: Session) -> Iterator[AuditEvent]:
    stmt = (
        select(AuditEvent)
        .where(AuditEvent.leaf_index.is_not(None))
        .order_by(AuditEvent.leaf_index)
        .execution_options(yield_per=1000)
    )
    yield from session.scalars(stmt)


def _check_head(row: AuditTreeHead, root: bytes, key: PlatformKey, start: int) -> Problem | None:
    if row.root_hash != root:
        return Problem(
            HEAD_MISMATCH,
            f"the signed tree head of size {row.tree_size} does not match the stored events: "
            f"an event in #{start}..#{row.tree_size - 1} was altered, replaced or moved",
            leaf_index=start,
        )
    if row.key_id != key.fingerprint:
        return Problem(
            BAD_SIGNATURE,
            f"tree head of size {row.tree_size} was signed by an unknown key {row.key_id}",
        )
    if not key.verify(row.signature, tree_head_of(row).signing_payload()):
        return Problem(BAD_SIGNATURE, f"tree head of size {row.tree_size}: bad signature")
    return None


def verify_log(session: Session, key: PlatformKey | None = None) -> VerifyReport:
    """Recompute the log from the stored events and check it against every signed head.

    Walks the sequenced events in leaf order and checks, for each: its index follows the
    previous one (else an event is *missing*, i.e. deleted), it names the previous event as
    its predecessor (else it was *reordered*, or its predecessor deleted and the rest
    renumbered), and its stored leaf hash equals the hash recomputed from its fields (else
    it was *altered*). At each signed tree head the recomputed root must equal the signed
    root and the Ed25519 signature must verify. Finally the sequencer's state row and the
    stored subtree nodes must agree with the recomputed tree. Stops at the first problem.
    """
    key = key or platform_key()
    report = VerifyReport(ok=False)
    report.pending = (
        session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.leaf_index.is_(None))
        )
        or 0
    )
    heads = list(session.scalars(select(AuditTreeHead).order_by(AuditTreeHead.tree_size)))
    head_pos = 0
    last_head_size = 0
    tree = merkle.CompactTree()
    nodes: dict[tuple[int, int], bytes] = {}
    prev_id: uuid.UUID | None = None

    def fail(problem: Problem) -> VerifyReport:
        report.problem = problem
        report.event_count = tree.size
        return report

    for event in _events(session):
        expected = tree.size
        assert event.leaf_index is not None
        if event.leaf_index != expected:
            deleted = event.prev_id if event.leaf_index == expected + 1 else None
            return fail(
                Problem(
                    MISSING,
                    "missing (deleted): no event holds this leaf index",
                    leaf_index=expected,
                    event_id=deleted,
                )
            )
        if event.prev_id != prev_id:
            known = event.prev_id is not None and (
                session.get(AuditEvent, event.prev_id) is not None
            )
            if event.prev_id is not None and not known:
                return fail(
                    Problem(
                        MISSING,
                        f"missing (deleted): the event before {event.id} is gone and later "
                        "events were renumbered",
                        leaf_index=expected,
                        event_id=event.prev_id,
                    )
                )
            return fail(
                Problem(
                    REORDERED,
                    f"reordered: it was sequenced after {event.prev_id}, but follows {prev_id}",
                    leaf_index=expected,
                    event_id=event.id,
                )
            )
        recomputed = merkle.leaf_hash(leaf_bytes(event))
        if event.leaf_hash != recomputed:
            return fail(
                Problem(
                    ALTERED,
                    "altered: its stored fields no longer match its leaf hash",
                    leaf_index=expected,
                    event_id=event.id,
                )
            )
        for node in tree.append(recomputed):
            if node.level >= NODE_LEVEL:
                nodes[(node.level, node.index)] = node.hash
        prev_id = event.id
        while head_pos < len(heads) and heads[head_pos].tree_size == tree.size:
            problem = _check_head(heads[head_pos], tree.root(), key, last_head_size)
            if problem is not None:
                return fail(problem)
            last_head_size = tree.size
            head_pos += 1
            report.heads_checked += 1

    count = tree.size
    state = session.get(AuditLogState, 1)
    if head_pos < len(heads):
        last = state.last_event_id if state is not None and state.tree_size == count + 1 else None
        return fail(
            Problem(
                MISSING,
                f"missing (deleted): the signed tree head of size {heads[head_pos].tree_size} "
                f"covers more than the {count} stored events",
                leaf_index=count,
                event_id=last,
            )
        )
    if count > last_head_size:
        return fail(
            Problem(
                UNSIGNED,
                f"events #{last_head_size}..#{count - 1} are not covered by any signed tree head",
                leaf_index=last_head_size,
            )
        )
    if count and (
        state is None
        or state.tree_size != count
        or state.frontier != tree.to_bytes()
        or state.last_event_id != prev_id
    ):
        return fail(Problem(STATE_MISMATCH, "the sequencer's state row disagrees with the log"))
    for stored in session.scalars(select(AuditTreeNode)):
        if nodes.get((stored.level, stored.node_index)) != stored.hash:
            return fail(
                Problem(
                    NODE_MISMATCH,
                    f"stored subtree hash (level {stored.level}, index {stored.node_index}) "
                    "disagrees with the events",
                )
            )
    if len(nodes) != (session.scalar(select(func.count()).select_from(AuditTreeNode)) or 0):
        return fail(Problem(NODE_MISMATCH, "stored subtree hashes are missing"))

    report.ok = True
    report.event_count = count
    report.root_hash = tree.root()
    if heads:
        report.latest_head_size = heads[-1].tree_size
        report.latest_head_at = heads[-1].timestamp
    return report


def run_verify(echo: Callable[[str], object]) -> int:
    """``sunbid audit verify``: print one line, return the exit code (0 OK, 1 broken)."""
    with db.session_scope() as s:
        report = verify_log(s)
        s.rollback()
    echo(report.summary())
    return 0 if report.ok else 1

"""The audit transparency log (审计日志 / 见证零死角).

Every state change is recorded with :func:`record_event` in the same transaction as the
change itself, so a rolled-back operation leaves no event. Recorded events are appended to
an RFC 6962 Merkle log (:mod:`crypto.merkle`): each becomes a leaf whose content is the
RFC 8785 canonical JSON of its fields (see :func:`leaf_bytes`), and every append ends with
a tree head signed by the platform's Ed25519 key. Anyone can fetch the signed head, an
inclusion proof for a leaf (e.g. the one on a bid receipt) and a consistency proof between
two heads; ``sunbid audit verify`` recomputes everything from the stored events.

Sequencing — a deliberate design decision
-----------------------------------------
Giving an event its leaf index inside the business transaction would make every
transaction that records an event lock the one row holding the log's size: the whole
platform would be serialised on it, for the full length of each business transaction.
Instead:

1. :func:`record_event` inserts the event *unsequenced* (``leaf_index`` NULL). Inserts of
   independent rows do not contend.
2. A sequencer, :func:`sequence_pending`, locks the single ``audit_log_state`` row
   (``SELECT … FOR UPDATE``; on SQLite a no-op ``UPDATE`` takes the database write lock),
   gives the *committed* unsequenced events consecutive indices in ``(created_at, id)``
   order, computes their leaf hashes, advances the compact-tree frontier stored on the
   state row (no earlier leaf is re-read), stores the completed perfect subtrees of 256+
   leaves (a proof cache) and a new signed tree head. Two sequencers queue on the row
   lock, so no index is given twice; ``audit_events.leaf_index`` is also UNIQUE.
3. The sequencer runs in its own transaction right after each committed request that
   recorded events (``db.call_after_commit``; it skips if another sequencer holds the
   lock, which will have picked the events up or leaves them for the next run) and from
   the periodic sweep (:func:`sweep_sequence`), which catches anything left. Bulk callers
   that commit many short transactions in a row (the opening's decrypt worker) wrap them
   in :func:`deferred_sequencing`: one sequencer run at the end instead of one per commit.
4. :func:`sequence_now` sequences inside the caller's transaction for the few callers
   that must hand out a leaf index at once (bid receipts); they hold the lock until they
   commit.

So the order of the log is the order of sequencing, not of the business clocks; each leaf
names its predecessor (``prev_id``) and its index, so a deleted, moved or altered event is
named by :func:`verify_log`.
"""

from __future__ import annotations

from flask import Flask

from bidding.core.audit.models import AuditEvent, AuditLogState, AuditTreeHead, AuditTreeNode
from bidding.core.audit.services import (
    Actor,
    EventEntry,
    consistency_proof_between,
    deferred_sequencing,
    inclusion_proof_for,
    latest_tree_head,
    leaf_bytes,
    record_event,
    record_events,
    sequence_now,
    sequence_pending,
    sweep_sequence,
)
from bidding.core.audit.verify import Problem, VerifyReport, run_verify, verify_log

__all__ = [
    "Actor",
    "AuditEvent",
    "AuditLogState",
    "AuditTreeHead",
    "AuditTreeNode",
    "EventEntry",
    "Problem",
    "VerifyReport",
    "consistency_proof_between",
    "deferred_sequencing",
    "inclusion_proof_for",
    "init_app",
    "latest_tree_head",
    "leaf_bytes",
    "record_event",
    "record_events",
    "run_verify",
    "sequence_now",
    "sequence_pending",
    "sweep_sequence",
    "verify_log",
]


def init_app(app: Flask) -> None:
    """Register the audit API and the sequencing sweep; remember the signing-key settings."""
    from bidding.core.audit.api import bp
    from bidding.core.signing_key import use_settings
    from bidding.core.tasks import register_sweep

    use_settings(app.extensions["sunbid_settings"])
    register_sweep("audit.sequence")(sweep_sequence)
    app.register_blueprint(bp)

"""Audit log tables (审计日志): events, the sequencer's state row, signed tree heads and
stored perfect-subtree hashes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from bidding.core.clock import now
from bidding.core.db import Base, IdMixin

__all__ = ["AuditEvent", "AuditLogState", "AuditTreeHead", "AuditTreeNode"]

#: Perfect subtrees of at least 2**NODE_LEVEL leaves are stored (one row per 256 events),
#: so a proof reads O(log n) nodes and at most a few hundred leaf hashes.
NODE_LEVEL = 8


class AuditEvent(IdMixin, Base):
    """One recorded action (审计事件). Unsequenced (``leaf_index`` NULL) until the
    sequencer appends it to the Merkle log; after that every field is frozen."""

    __tablename__ = "audit_events"
    __table_args__ = (
        CheckConstraint(
            "(leaf_index IS NULL AND leaf_hash IS NULL) OR "
            "(leaf_index IS NOT NULL AND leaf_hash IS NOT NULL AND leaf_index >= 0)",
            name="sequenced_together",
        ),
        Index("ix_audit_events_object", "object_type", "object_id"),
        Index("ix_audit_events_pending", "created_at", "id"),
    )

    created_at: Mapped[datetime] = mapped_column(default=now)
    # No foreign key: bidding.core must not depend on the accounts tables, and the log
    # outlives the rows it speaks of.
    actor_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    actor_label: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100), index=True)
    object_type: Mapped[str] = mapped_column(String(60))
    object_id: Mapped[str | None] = mapped_column(String(100), default=None)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    leaf_index: Mapped[int | None] = mapped_column(BigInteger, unique=True, default=None)
    leaf_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32), default=None)
    #: The event sequenced just before this one (None for leaf 0): part of the leaf, so a
    #: deleted or moved event is named by its neighbour.
    prev_id: Mapped[uuid.UUID | None] = mapped_column(default=None)

    def __repr__(self) -> str:
        return f"<AuditEvent #{self.leaf_index} {self.action} {self.object_type}:{self.object_id}>"


class AuditLogState(Base):
    """The single row the sequencer locks: the log's size, its compact-tree frontier and
    the last sequenced event."""

    __tablename__ = "audit_log_state"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    tree_size: Mapped[int] = mapped_column(BigInteger, default=0)
    frontier: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    last_event_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    last_head_at: Mapped[datetime | None] = mapped_column(default=None)


class AuditTreeHead(IdMixin, Base):
    """A signed tree head (签名树头, STH): the root of the first ``tree_size`` leaves."""

    __tablename__ = "audit_tree_heads"
    __table_args__ = (CheckConstraint("tree_size > 0", name="tree_size_positive"),)

    tree_size: Mapped[int] = mapped_column(BigInteger, unique=True)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    timestamp: Mapped[datetime]
    algorithm: Mapped[str] = mapped_column(String(20), default="Ed25519")
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[bytes] = mapped_column(LargeBinary(64))


class AuditTreeNode(Base):
    """The hash of a perfect subtree ``[node_index·2^level, (node_index+1)·2^level)`` (a cache for
    proofs; ``verify_log`` recomputes and compares it)."""

    __tablename__ = "audit_tree_nodes"

    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    node_index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))

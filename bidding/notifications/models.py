"""Notifications (消息通知): one row per recipient user, read state per user.

A notification stores *what happened* (:class:`NotificationKind`) and its parameters
(deadlines, reasons, ids), never rendered text: the text is rendered at display time in
the reader's language (see ``bidding.notifications.services.render``). Each row names the
audit event that caused it, so a notification can always be traced to the logged fact,
and one event notifies a user at most once (UNIQUE ``event_id, user_id``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bidding.accounts.models import User
from bidding.core.clock import now
from bidding.core.db import Base, IdMixin
from bidding.core.states import enum_column
from bidding.projects.models import Section

__all__ = ["Notification", "NotificationKind"]


class NotificationKind(StrEnum):
    """What a notification reports. Values are stable (stored)."""

    CLARIFICATION_ISSUED = "clarification_issued"  # 澄清/修改
    PROCEDURE_PAUSED = "procedure_paused"  # 异议：招标投标活动暂停
    PROCEDURE_RESUMED = "procedure_resumed"  # 异议已答复：恢复
    SECTION_CANCELLED = "section_cancelled"  # 终止招标
    BIDS_CLOSED = "bids_closed"  # 投标截止
    OPENING_STARTED = "opening_started"  # 开标大厅已开启
    SECTION_FAILED = "section_failed"  # 流标
    OPENING_RECORD_PUBLISHED = "opening_record_published"  # 开标记录已发布


class Notification(IdMixin, Base):
    """One message in one user's inbox (消息中心)."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("event_id", "user_id"),
        Index("ix_notifications_user_created", "user_id", "created_at", "id"),
        Index("ix_notifications_user_read", "user_id", "read_at"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[NotificationKind] = mapped_column(
        enum_column(NotificationKind, "notification_kind", length=40)
    )
    #: The section the message is about (all current kinds are about one).
    section_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("sections.id"), index=True)
    #: The audit event that caused the message.
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("audit_events.id"))
    #: JSON parameters of the text (ISO times in UTC, reasons, ids); rendered at display time.
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=now)
    read_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()
    section: Mapped[Section | None] = relationship()

    @property
    def unread(self) -> bool:
        return self.read_at is None

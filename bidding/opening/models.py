"""The online opening (不见面开标): the opening session of a section, the custodians' share
releases, per-bid results, sign-ins to the opening hall and objections raised there.

State of an :class:`OpeningSession`::

    waiting_shares ──(k valid shares)──▶ decrypting ──(every bid has a result)──▶ completed
          │                                  ▲
          └──(quorum window passed)──▶ self_open_window ──(deadline / all done)──▶ completed

Bids are never given opening states of their own: the outcome of each bid at the opening
lives in :class:`OpeningResult` (``pending`` → ``opened`` / ``revoked`` (撤销, the bidder's
fault) / ``withdrawn`` (撤回, not the bidder's fault); DZ20 31), keyed by the bid.

Secrets on these rows are never plaintext: a released share (``ShareRelease.sealed_share``)
and a data key handed over by a bidder (``OpeningResult.sealed_handover_key``) are sealed
to the platform's opening vault key (:mod:`bidding.opening.vault`) and erased when the
opening completes; the archived data key (``OpeningResult.archived_data_key``) is sealed to
the platform's archive key.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bidding.core.clock import now
from bidding.core.db import Base, IdMixin
from bidding.core.states import check_transitions, enum_column

__all__ = [
    "HallSignIn",
    "OpeningObjection",
    "OpeningResult",
    "OpeningSession",
    "OpeningState",
    "ResultStatus",
    "ShareRelease",
    "ShareStatus",
]


class OpeningState(StrEnum):
    WAITING_SHARES = "waiting_shares"  # 等待密钥保管人解密
    DECRYPTING = "decrypting"  # 解密中
    SELF_OPEN_WINDOW = "self_open_window"  # 法定人数未到：投标人自行解密
    COMPLETED = "completed"  # 开标结束，开标记录已发布


_O = OpeningState
OPENING_TRANSITIONS: Mapping[OpeningState, frozenset[OpeningState]] = {
    _O.WAITING_SHARES: frozenset({_O.DECRYPTING, _O.SELF_OPEN_WINDOW, _O.COMPLETED}),
    _O.SELF_OPEN_WINDOW: frozenset({_O.DECRYPTING, _O.COMPLETED}),
    _O.DECRYPTING: frozenset({_O.COMPLETED}),
    _O.COMPLETED: frozenset(),
}
check_transitions(OpeningState, OPENING_TRANSITIONS)


class ShareStatus(StrEnum):
    VALID = "valid"  # matches its published commitment: counts toward k
    REFUSED = "refused"  # share_invalid: recorded, does not count


class ResultStatus(StrEnum):
    PENDING = "pending"  # 待解密
    OPENED = "opened"  # 解密成功
    REVOKED = "revoked"  # 撤销: decryption failed by the bidder's fault (DZ20 31)
    WITHDRAWN = "withdrawn"  # 撤回: decryption failed by anyone else's fault (DZ20 31)


class OpeningSession(IdMixin, Base):
    """The opening (开标) of one section."""

    __tablename__ = "opening_sessions"
    TRANSITIONS: ClassVar[Mapping[OpeningState, frozenset[OpeningState]]] = OPENING_TRANSITIONS
    __table_args__ = (
        CheckConstraint("k >= 1 AND k <= n", name="threshold"),
        CheckConstraint("shares_received >= 0", name="shares_non_negative"),
        CheckConstraint(
            "state <> 'completed' OR (completed_at IS NOT NULL AND record IS NOT NULL)",
            name="completed_has_record",
        ),
        CheckConstraint(
            "state <> 'self_open_window' OR self_open_deadline IS NOT NULL",
            name="self_open_has_deadline",
        ),
    )

    section_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sections.id"), unique=True)
    state: Mapped[OpeningState] = mapped_column(
        enum_column(OpeningState, "opening_state"), default=OpeningState.WAITING_SHARES
    )
    k: Mapped[int] = mapped_column(Integer)
    n: Mapped[int] = mapped_column(Integer)
    #: valid shares released so far (distinct indices).
    shares_received: Mapped[int] = mapped_column(Integer, default=0)
    #: custodians must have released k valid shares by then (*setting*, 30 min after the deadline).
    quorum_deadline: Mapped[datetime]
    #: bidders may hand over their own data keys until then (after the quorum failed).
    self_open_deadline: Mapped[datetime | None]
    started_at: Mapped[datetime] = mapped_column(default=now)
    quorum_reached_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    #: the published opening record (开标记录): ``SignedDocument.to_dict()``.
    record: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    record_sha256: Mapped[str | None] = mapped_column(String(64))

    results: Mapped[list[OpeningResult]] = relationship(
        back_populates="session", order_by="OpeningResult.position"
    )
    releases: Mapped[list[ShareRelease]] = relationship(
        back_populates="session", order_by="ShareRelease.released_at"
    )
    sign_ins: Mapped[list[HallSignIn]] = relationship(
        back_populates="session", order_by="HallSignIn.signed_in_at"
    )
    objections: Mapped[list[OpeningObjection]] = relationship(
        back_populates="session", order_by="OpeningObjection.raised_at"
    )


class ShareRelease(IdMixin, Base):
    """One custodian's release of its share (解密开标密钥份额), valid or refused."""

    __tablename__ = "opening_share_releases"
    __table_args__ = (
        CheckConstraint("share_index >= 1", name="share_index_positive"),
        CheckConstraint("status = 'valid' OR sealed_share IS NULL", name="refused_share_not_kept"),
    )

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("opening_sessions.id", ondelete="CASCADE"), index=True
    )
    custodian_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("section_custodians.id"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    share_index: Mapped[int] = mapped_column(Integer)
    status: Mapped[ShareStatus] = mapped_column(enum_column(ShareStatus, "share_status"))
    #: "upload" (decrypted client-side) or "passphrase" (decrypted in server memory).
    method: Mapped[str] = mapped_column(String(16))
    #: the share sealed to the opening vault key; NULL once the opening completed.
    sealed_share: Mapped[bytes | None] = mapped_column(LargeBinary)
    error_code: Mapped[str | None] = mapped_column(String(64))
    released_at: Mapped[datetime] = mapped_column(default=now)
    erased_at: Mapped[datetime | None]

    session: Mapped[OpeningSession] = relationship(back_populates="releases")


class OpeningResult(IdMixin, Base):
    """The outcome of one bid at the opening (开标结果): decrypted or why not."""

    __tablename__ = "opening_results"
    __table_args__ = (
        CheckConstraint(
            "status <> 'opened' OR (price_sheet IS NOT NULL AND decrypted_at IS NOT NULL)",
            name="opened_has_price_sheet",
        ),
        CheckConstraint(
            "status IN ('pending', 'opened') OR evidence IS NOT NULL", name="failure_has_evidence"
        ),
        CheckConstraint("handover_attempts >= 0", name="attempts_non_negative"),
    )

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("opening_sessions.id", ondelete="CASCADE"), index=True
    )
    bid_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("bids.id"), unique=True)
    bidder_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    bidder_name: Mapped[str] = mapped_column(String(200))
    #: order in the record (the order in which the bids were received).
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[ResultStatus] = mapped_column(
        enum_column(ResultStatus, "opening_result_status"), default=ResultStatus.PENDING
    )
    #: "quorum" (the custodians' key) or "self" (the bidder's own data key).
    opened_via: Mapped[str | None] = mapped_column(String(16))
    #: failure evidence: {"code", "check", "segment", "fault", "message", ...}.
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    #: the price sheet (开标一览表) as read from the decrypted bid.
    #: (None is SQL NULL, not JSON ``null``, so that the CHECKs above see it)
    price_sheet: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    decrypted_at: Mapped[datetime | None]
    plaintext_size: Mapped[int | None] = mapped_column(BigInteger)
    plaintext_sha256: Mapped[str | None] = mapped_column(String(64))
    #: storage key of the bid's ciphertext, which stays the at-rest form of the plaintext;
    #: readable after the opening through ``archived_data_key`` only.
    archive_storage_key: Mapped[str | None] = mapped_column(String(512))
    #: the bid's data key sealed to the platform archive key (再加密存储).
    archived_data_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: a data key the bidder handed over (自行解密), sealed to the vault key until used.
    sealed_handover_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    handover_attempts: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=now, onupdate=now)

    session: Mapped[OpeningSession] = relationship(back_populates="results")


class HallSignIn(IdMixin, Base):
    """A party's sign-in to the opening hall (开标大厅签到)."""

    __tablename__ = "opening_sign_ins"
    __table_args__ = (UniqueConstraint("session_id", "user_id"),)

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("opening_sessions.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    display_name: Mapped[str] = mapped_column(String(200))
    #: bidder, custodian, center_staff, supervisor, manager.
    capacity: Mapped[str] = mapped_column(String(32))
    organisation_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("organisations.id"))
    organisation_name: Mapped[str | None] = mapped_column(String(200))
    signed_in_at: Mapped[datetime] = mapped_column(default=now)

    session: Mapped[OpeningSession] = relationship(back_populates="sign_ins")


class OpeningObjection(IdMixin, Base):
    """An objection raised at the opening (开标异议), answered on the spot (SSTL 44)."""

    __tablename__ = "opening_objections"
    __table_args__ = (
        CheckConstraint(
            "(answer IS NULL AND answered_at IS NULL AND answered_by_id IS NULL) OR "
            "(answer IS NOT NULL AND answered_at IS NOT NULL AND answered_by_id IS NOT NULL)",
            name="answer_complete",
        ),
    )

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("opening_sessions.id", ondelete="CASCADE"), index=True
    )
    bidder_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    bidder_name: Mapped[str] = mapped_column(String(200))
    raised_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(Text)
    raised_at: Mapped[datetime] = mapped_column(default=now)
    answer: Mapped[str | None] = mapped_column(Text)
    answered_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    answered_by_name: Mapped[str | None] = mapped_column(String(200))
    answered_at: Mapped[datetime | None]

    session: Mapped[OpeningSession] = relationship(back_populates="objections")

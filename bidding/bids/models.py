"""Sealed bids (投标) and their upload sessions.

A bidder's client seals the bid (``bidding.bids.package``: a ZIP with the price sheet
开标一览表 and the documents) into a ``crypto.envelope`` envelope, signs a
``crypto.signing.BidManifest`` and uploads the ciphertext. Two tables:

* :class:`BidUpload` — an upload session (上传会话): the object key the ciphertext goes to,
  the declared size and SHA-256, the S3 multipart upload id for large files, and when it
  expires. The object under ``storage_key`` is in *quarantine* until a commit accepts it:
  nothing refers to it but this row, and the sweep ``bids.expire_uploads`` aborts and
  deletes it once the session expires (at the latest at the bid deadline: an upload not
  finished before the deadline is a withdrawal, DZ20 26).
* :class:`Bid` — one accepted (committed) submission (投标文件递交). The object is *not*
  moved out of quarantine: acceptance is the flip of the upload's state to ``committed``
  plus this row, in one transaction (the store has no atomic rename; a copy would double
  the I/O of a large bid and could itself leave an orphan).

State of a bid::

    committed → superseded   (the bidder submitted a newer bid: 修改, only the latest counts)
              → withdrawn    (撤回, before the deadline)

Later states (opening: opened, decrypt_failed, revoked …) are added by the opening domain.
``BidState`` is an open StrEnum and the states are stored as VARCHAR with a *named* CHECK
(``ck_bids_bid_state``), so adding a state is one migration that drops and recreates that
constraint. The other CHECKs are implications that do not enumerate every state.

Exactly one *current* bid per (section, bidder): ``is_current`` with a partial unique
index (``uq_bids_current``, ``WHERE is_current``) on PostgreSQL and SQLite. A superseded or
withdrawn bid is never current (CHECK ``current_not_replaced``).
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
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bidding.accounts.models import Organisation, User
from bidding.core.clock import now
from bidding.core.db import Base, IdMixin
from bidding.core.states import check_transitions, enum_column
from bidding.projects.models import Section

__all__ = [
    "BID_TRANSITIONS",
    "Bid",
    "BidState",
    "BidUpload",
    "UploadMethod",
    "UploadState",
]


class BidState(StrEnum):
    """States of a submitted bid. Extensible: the opening domain appends its states."""

    COMMITTED = "committed"  # 已递交 (the current bid unless replaced)
    SUPERSEDED = "superseded"  # 已被修改替换 (a newer bid of the same bidder counts)
    WITHDRAWN = "withdrawn"  # 已撤回 (before the deadline)


#: States in which a bid no longer counts and never will again.
REPLACED_STATES = frozenset({BidState.SUPERSEDED, BidState.WITHDRAWN})

BID_TRANSITIONS: dict[BidState, frozenset[BidState]] = {
    BidState.COMMITTED: frozenset({BidState.SUPERSEDED, BidState.WITHDRAWN}),
    BidState.SUPERSEDED: frozenset(),
    BidState.WITHDRAWN: frozenset(),
}
check_transitions(BidState, BID_TRANSITIONS)


class UploadMethod(StrEnum):
    STREAM = "stream"  # streamed through the API (PUT, up to SUNBID_BID_STREAM_MAX_MB)
    MULTIPART = "multipart"  # presigned multipart straight to the object store (resumable)
    SINGLE = "single"  # one presigned PUT straight to the object store (re-PUT to retry)


class UploadState(StrEnum):
    OPEN = "open"  # multipart parts being sent
    RECEIVED = "received"  # the whole object is stored and its size/SHA-256 verified
    COMMITTED = "committed"  # a bid was accepted with it (the object now belongs to the bid)
    REFUSED = "refused"  # a commit was refused; the object is deleted
    EXPIRED = "expired"  # not committed in time; the object is deleted
    ABORTED = "aborted"  # given up by the bidder; the object is deleted


#: Upload states whose object is still in quarantine (deleted by the sweep on expiry).
PENDING_UPLOAD_STATES = frozenset({UploadState.OPEN, UploadState.RECEIVED})


class BidUpload(IdMixin, Base):
    """An upload session for one sealed-bid ciphertext (投标文件上传)."""

    __tablename__ = "bid_uploads"
    __table_args__ = (
        UniqueConstraint("storage_key"),
        UniqueConstraint("section_id", "bidder_id", "client_key"),
        CheckConstraint("expected_size >= 0", name="size_non_negative"),
        CheckConstraint(
            "method <> 'multipart' OR (multipart_upload_id IS NOT NULL AND part_size > 0)",
            name="multipart_complete",
        ),
        CheckConstraint(
            "state NOT IN ('refused', 'expired', 'aborted') OR closed_at IS NOT NULL",
            name="closed_has_time",
        ),
        CheckConstraint(
            "NOT envelope_verified OR (envelope_sha256 IS NOT NULL AND envelope_size IS NOT NULL"
            " AND envelope_header_sha256 IS NOT NULL AND envelope_key_commitment IS NOT NULL"
            " AND envelope_segment_size IS NOT NULL AND envelope_version IS NOT NULL"
            " AND envelope_recipient_key_ids IS NOT NULL)",
            name="verified_has_findings",
        ),
        Index("ix_bid_uploads_state_expires", "state", "expires_at"),
    )

    section_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sections.id"), index=True)
    bidder_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"), index=True)
    created_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    #: the client's key for this upload (a retried start returns the same session).
    client_key: Mapped[str] = mapped_column(String(128))
    method: Mapped[UploadMethod] = mapped_column(enum_column(UploadMethod, "bid_upload_method"))
    state: Mapped[UploadState] = mapped_column(
        enum_column(UploadState, "bid_upload_state"), default=UploadState.OPEN
    )
    #: ``bids/<section id>/<upload id>``: quarantine until committed, then the bid's key.
    storage_key: Mapped[str] = mapped_column(String(512))
    expected_size: Mapped[int] = mapped_column(BigInteger)
    expected_sha256: Mapped[str] = mapped_column(String(64))
    multipart_upload_id: Mapped[str | None] = mapped_column(String(1024))
    part_size: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=now)
    #: the session ends here (≤ the bid deadline); the sweep then deletes the object.
    expires_at: Mapped[datetime]
    received_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    #: why a commit was refused (the error code), for the bidder's status page.
    refusal_code: Mapped[str | None] = mapped_column(String(64))

    # What the keyless envelope check found while a streamed upload passed through the
    # platform (结构已校验). Set only when that one pass both stored and checked the bytes:
    # the commit then compares the manifest with these columns instead of reading the
    # object back. Multipart uploads (sent straight to the store) leave them empty.
    envelope_verified: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: the header's context fields the commit checks (``None``: absent from the header).
    envelope_section_id: Mapped[str | None] = mapped_column(String(1024))
    envelope_opening_key_fingerprint: Mapped[str | None] = mapped_column(String(1024))
    #: hex key ids of the recipient stanzas, in header order.
    envelope_recipient_key_ids: Mapped[list[str] | None] = mapped_column(JSON)
    envelope_key_commitment: Mapped[str | None] = mapped_column(String(64))
    envelope_segment_size: Mapped[int | None] = mapped_column(Integer)
    envelope_version: Mapped[int | None] = mapped_column(Integer)
    envelope_header_sha256: Mapped[str | None] = mapped_column(String(64))
    #: SHA-256 and size of the bytes the check saw (= the stored object's).
    envelope_sha256: Mapped[str | None] = mapped_column(String(64))
    envelope_size: Mapped[int | None] = mapped_column(BigInteger)

    section: Mapped[Section] = relationship()
    bidder: Mapped[Organisation] = relationship()

    @property
    def part_count(self) -> int:
        if not self.part_size:
            return 1
        return max(1, -(-self.expected_size // self.part_size))


class Bid(IdMixin, Base):
    """A sealed bid accepted before the deadline (投标文件), with its signed manifest and the
    platform's receipt (回执)."""

    __tablename__ = "bids"
    TRANSITIONS: ClassVar[Mapping[BidState, frozenset[BidState]]] = BID_TRANSITIONS
    __table_args__ = (
        UniqueConstraint("upload_id"),
        #: the Idempotency-Key of the commit: one bid per bidder, section and key.
        UniqueConstraint("section_id", "bidder_id", "client_key"),
        CheckConstraint("ciphertext_size >= 0", name="size_non_negative"),
        CheckConstraint(
            "NOT is_current OR state NOT IN ('superseded', 'withdrawn')",
            name="current_not_replaced",
        ),
        CheckConstraint(
            "state <> 'superseded' OR (superseded_at IS NOT NULL)", name="superseded_has_time"
        ),
        CheckConstraint(
            "state <> 'withdrawn' OR (withdrawn_at IS NOT NULL AND withdrawn_by_id IS NOT NULL)",
            name="withdrawn_has_time",
        ),
        Index(
            "uq_bids_current",
            "section_id",
            "bidder_id",
            unique=True,
            sqlite_where=text("is_current"),
            postgresql_where=text("is_current"),
        ),
        Index("ix_bids_section_current", "section_id", "is_current"),
    )

    section_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sections.id"))
    bidder_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"), index=True)
    submitted_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    upload_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("bid_uploads.id"))
    state: Mapped[BidState] = mapped_column(
        enum_column(BidState, "bid_state"), default=BidState.COMMITTED
    )
    #: the bidder's latest bid for the section (only it counts and is opened).
    is_current: Mapped[bool] = mapped_column(Boolean, default=True)
    client_key: Mapped[str] = mapped_column(String(128))

    # the ciphertext (the envelope file as stored; never served before the opening)
    storage_key: Mapped[str] = mapped_column(String(512))
    ciphertext_size: Mapped[int] = mapped_column(BigInteger)
    ciphertext_sha256: Mapped[str] = mapped_column(String(64))
    #: when the ciphertext of a superseded or withdrawn bid was deleted (see services).
    ciphertext_deleted_at: Mapped[datetime | None]

    # the envelope header (checked on commit) and what the bidder signed
    envelope_header_sha256: Mapped[str] = mapped_column(String(64))
    data_key_commitment: Mapped[str] = mapped_column(String(64))
    opening_key_fingerprint: Mapped[str] = mapped_column(String(64))
    segment_size: Mapped[int] = mapped_column(Integer)
    #: ``BidManifest.to_document()`` exactly as signed.
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: base64 of the signature over the manifest document.
    manifest_signature: Mapped[str] = mapped_column(Text)
    signer_certificate_pem: Mapped[str] = mapped_column(Text)
    signer_intermediates_pem: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: ``crypto.pki.key_id`` of the signer's public key.
    signer_key_id: Mapped[str] = mapped_column(String(64))
    signer_certificate_serial: Mapped[str] = mapped_column(String(64))

    # acceptance
    #: server time read under the section lock: the time the bid counts as submitted.
    committed_at: Mapped[datetime]
    audit_event_id: Mapped[uuid.UUID]
    log_index: Mapped[int] = mapped_column(BigInteger)
    #: ``crypto.receipt.Receipt.to_dict()`` signed by the platform key.
    receipt: Mapped[dict[str, Any]] = mapped_column(JSON)

    superseded_at: Mapped[datetime | None]
    superseded_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("bids.id"))
    withdrawn_at: Mapped[datetime | None]
    withdrawn_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))

    section: Mapped[Section] = relationship()
    bidder: Mapped[Organisation] = relationship()
    submitted_by: Mapped[User] = relationship(foreign_keys=[submitted_by_id])
    upload: Mapped[BidUpload] = relationship()

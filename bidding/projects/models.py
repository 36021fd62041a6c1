"""Projects and sections (项目与标段) of the tender lifecycle.

A :class:`Project` is registered once when it enters a trading center (进场登记) and gets
its lifelong transaction code (统一交易标识码). It is divided into :class:`Section` rows
(标段 / 包), each of which runs its own state machine (DESIGN.md "The tender's life")::

    draft → under_review → published → closed → opening → opened → evaluating → evaluated
          → publicity → awarded → contracted → archived
    side exits: failed (流标), cancelled

Around a section: its tender documents (:class:`TenderDocument`), the fair-competition
review findings (:class:`ReviewFinding`), clarifications and amendments
(:class:`Clarification`), objections to the documents (:class:`Objection`), bidder
registrations (:class:`Registration`) and the opening-key custodians
(:class:`SectionCustodian`).

"Paused" (暂停, SSTL 22): while a section has an objection that is not yet answered, the
procedure after publication is paused — the section does **not** move to ``closed`` at the
bid deadline (neither by the sweep nor by hand); it stays ``published`` until every
objection is answered, and the next sweep then closes it if its deadline has passed.
Clarifications (which may move the deadline) and registrations remain possible while
paused. See :attr:`Section.paused` and ``bidding.projects.services.close_due_sections``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bidding.accounts.models import Organisation, TradingCenter, User
from bidding.core.clock import now
from bidding.core.db import Base, IdMixin
from bidding.core.states import check_transitions, enum_column
from bidding.core.storage.models import StoredFileMixin
from bidding.projects.rules.base import ProcurementKind, SubjectType

__all__ = [
    "MIN_BIDS_TO_OPEN",
    "Clarification",
    "DocumentKind",
    "FindingStatus",
    "Objection",
    "ObjectionStatus",
    "Project",
    "ProjectKind",
    "Registration",
    "ReviewFinding",
    "Section",
    "SectionCustodian",
    "SectionState",
    "Subject",
    "TenderDocument",
]

#: Fewer bids than this at the deadline → the section fails (流标; ZTBF 28, SSTL 44, L87 41).
MIN_BIDS_TO_OPEN = 3


#: Which law governs the project: tendering (招标投标, ZTBF) or procurement (政府采购, ZFCG).
ProjectKind = ProcurementKind
#: What is bought: works (工程), goods (货物) or services (服务).
Subject = SubjectType


class SectionState(StrEnum):
    DRAFT = "draft"  # 草稿
    UNDER_REVIEW = "under_review"  # 公平竞争审查中
    PUBLISHED = "published"  # 已发布 (招标公告)
    CLOSED = "closed"  # 投标截止
    OPENING = "opening"  # 开标中
    OPENED = "opened"  # 已开标
    EVALUATING = "evaluating"  # 评标中
    EVALUATED = "evaluated"  # 评标结束
    PUBLICITY = "publicity"  # 中标候选人公示
    AWARDED = "awarded"  # 已定标 (中标通知书)
    CONTRACTED = "contracted"  # 已签约
    ARCHIVED = "archived"  # 已归档
    FAILED = "failed"  # 流标
    CANCELLED = "cancelled"  # 已终止


_S = SectionState
#: States in which a section may still be cancelled (终止招标).
CANCELLABLE = frozenset(
    {
        _S.DRAFT,
        _S.UNDER_REVIEW,
        _S.PUBLISHED,
        _S.CLOSED,
        _S.OPENING,
        _S.OPENED,
        _S.EVALUATING,
        _S.EVALUATED,
        _S.PUBLICITY,
    }
)
#: States in which the section's tender documents are public.
PUBLIC_STATES = frozenset(set(SectionState) - {_S.DRAFT, _S.UNDER_REVIEW})


def _with_exits(targets: set[SectionState], *, fail: bool, cancel: bool) -> frozenset[_S]:
    if fail:
        targets.add(_S.FAILED)
    if cancel:
        targets.add(_S.CANCELLED)
    return frozenset(targets)


SECTION_TRANSITIONS: Mapping[SectionState, frozenset[SectionState]] = {
    _S.DRAFT: _with_exits({_S.UNDER_REVIEW}, fail=False, cancel=True),
    # back to draft to fix the documents after findings (退回修改)
    _S.UNDER_REVIEW: _with_exits({_S.DRAFT, _S.PUBLISHED}, fail=False, cancel=True),
    _S.PUBLISHED: _with_exits({_S.CLOSED}, fail=False, cancel=True),
    _S.CLOSED: _with_exits({_S.OPENING}, fail=True, cancel=True),
    _S.OPENING: _with_exits({_S.OPENED}, fail=True, cancel=True),
    _S.OPENED: _with_exits({_S.EVALUATING}, fail=True, cancel=True),
    _S.EVALUATING: _with_exits({_S.EVALUATED}, fail=True, cancel=True),
    # re-evaluation when an objection against the result is upheld
    _S.EVALUATED: _with_exits({_S.PUBLICITY, _S.EVALUATING}, fail=True, cancel=True),
    _S.PUBLICITY: _with_exits({_S.AWARDED, _S.EVALUATING}, fail=True, cancel=True),
    _S.AWARDED: frozenset({_S.CONTRACTED}),
    _S.CONTRACTED: frozenset({_S.ARCHIVED}),
    _S.FAILED: frozenset({_S.ARCHIVED}),
    _S.CANCELLED: frozenset({_S.ARCHIVED}),
    _S.ARCHIVED: frozenset(),
}
check_transitions(SectionState, SECTION_TRANSITIONS)


class DocumentKind(StrEnum):
    TENDER_DOCUMENTS = "tender_documents"  # 招标文件 / 采购文件
    CLARIFICATION = "clarification"  # 澄清文件
    AMENDMENT = "amendment"  # 修改文件


class FindingStatus(StrEnum):
    OPEN = "open"
    OVERRIDDEN = "overridden"  # 中心书面说明理由后放行


class ObjectionStatus(StrEnum):
    OPEN = "open"
    ANSWERED = "answered"


# ---------------------------------------------------------------------------------------


class Project(IdMixin, Base):
    """A project entered at a trading center (进场登记项目)."""

    __tablename__ = "projects"
    __table_args__ = (
        CheckConstraint("length(region_code) = 6", name="region_code_length"),
        CheckConstraint("amount IS NULL OR amount > 0", name="amount_positive"),
        CheckConstraint(
            "agency_id IS NULL OR agency_id <> tenderer_id", name="agency_not_tenderer"
        ),
    )

    #: 统一交易标识码: assigned once at entry, never changes.
    transaction_code: Mapped[str] = mapped_column(String(64), unique=True)
    #: 项目编号 (hierarchical; sections extend it with a serial).
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[ProjectKind] = mapped_column(enum_column(ProjectKind, "project_kind"))
    subject: Mapped[Subject] = mapped_column(enum_column(Subject, "project_subject"))
    tenderer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"), index=True)
    agency_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("organisations.id"), index=True)
    center_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("trading_centers.id"), index=True)
    region_code: Mapped[str] = mapped_column(String(6))
    #: total investment (works, 总投资) or budget (procurement, 预算金额), yuan.
    amount: Mapped[Decimal | None]
    funding_source: Mapped[str] = mapped_column(String(200), default="")
    created_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=now)

    tenderer: Mapped[Organisation] = relationship(foreign_keys=[tenderer_id])
    agency: Mapped[Organisation | None] = relationship(foreign_keys=[agency_id])
    center: Mapped[TradingCenter] = relationship()
    created_by: Mapped[User] = relationship()
    sections: Mapped[list[Section]] = relationship(
        back_populates="project", order_by="Section.serial"
    )


class Section(IdMixin, Base):
    """A section or lot (标段 / 包): the unit that is tendered, opened and awarded.

    ``version`` is the optimistic-concurrency counter (the API's ETag): every update bumps
    it, and a stale write fails at flush.
    """

    __tablename__ = "sections"
    TRANSITIONS: ClassVar[Mapping[SectionState, frozenset[SectionState]]] = SECTION_TRANSITIONS
    __table_args__ = (
        UniqueConstraint("project_id", "serial"),
        CheckConstraint("serial >= 1", name="serial_positive"),
        CheckConstraint("estimated_price > 0", name="estimated_price_positive"),
        CheckConstraint(
            "maximum_price IS NULL OR maximum_price > 0", name="maximum_price_positive"
        ),
        CheckConstraint("bid_deposit >= 0", name="bid_deposit_non_negative"),
        CheckConstraint("bid_validity_days > 0", name="bid_validity_positive"),
        CheckConstraint(
            "committee_experts >= 0 AND committee_experts <= committee_size",
            name="committee_composition",
        ),
        CheckConstraint("custodian_threshold >= 1", name="custodian_threshold_positive"),
        CheckConstraint("review_round >= 0", name="review_round_non_negative"),
        CheckConstraint(
            "state IN ('draft', 'under_review', 'cancelled', 'archived') OR "
            "(opening_public_key IS NOT NULL AND opening_key_fingerprint IS NOT NULL "
            "AND bid_deadline IS NOT NULL AND published_at IS NOT NULL)",
            name="published_has_key",
        ),
        CheckConstraint(
            "state <> 'cancelled' OR cancel_reason IS NOT NULL", name="cancel_has_reason"
        ),
        CheckConstraint("state <> 'failed' OR failure_reason IS NOT NULL", name="fail_has_reason"),
        Index("ix_sections_state_deadline", "state", "bid_deadline"),
    )

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id"), index=True)
    serial: Mapped[int] = mapped_column(Integer)
    #: 标段编号 = project code + serial.
    code: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    state: Mapped[SectionState] = mapped_column(
        enum_column(SectionState, "section_state"), default=SectionState.DRAFT
    )

    # money (yuan, CNY)
    #: 估算价 / 预算金额 (the base of the deposit cap).
    estimated_price: Mapped[Decimal]
    #: 最高投标限价 (optional). A minimum price is never allowed (SSTL 27).
    maximum_price: Mapped[Decimal | None]
    #: 投标保证金 (≤ 2 %, ≤ 800,000 for works).
    bid_deposit: Mapped[Decimal]
    bid_validity_days: Mapped[int] = mapped_column(Integer, default=90)

    # evaluation
    #: 评标办法 configuration, validated by ``rules.validate_evaluation_method``.
    evaluation_method: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    committee_size: Mapped[int] = mapped_column(Integer, default=5)
    #: how many of the committee are drawn experts (the rest: tenderer's representatives).
    committee_experts: Mapped[int] = mapped_column(Integer, default=4)
    #: technically complex or of wide social impact (procurement: committee ≥ 7, L87 47).
    complex_project: Mapped[bool] = mapped_column(Boolean, default=False)

    # opening custodians (k of n)
    custodian_threshold: Mapped[int] = mapped_column(Integer, default=2)

    # timeline (UTC)
    documents_issued_at: Mapped[datetime | None]  # 招标文件发出之日
    sale_start: Mapped[datetime | None]  # 文件发售 / 获取开始
    sale_end: Mapped[datetime | None]
    objection_cutoff: Mapped[datetime | None]  # 异议截止 (≥ 10 days before the deadline)
    #: 投标截止时间 = 开标时间.
    bid_deadline: Mapped[datetime | None]

    # fair-competition review
    review_round: Mapped[int] = mapped_column(Integer, default=0)
    submitted_for_review_at: Mapped[datetime | None]

    # opening key (public parts of the ceremony only; never the private key)
    opening_public_key: Mapped[str | None] = mapped_column(String(64))  # raw X25519, hex
    opening_key_fingerprint: Mapped[str | None] = mapped_column(String(64))
    #: ``OpeningKeyCeremony.to_dict()``: encrypted shares and share commitments.
    opening_ceremony: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    publication_prepared_at: Mapped[datetime | None]
    published_at: Mapped[datetime | None]
    published_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))

    # end of the procedure
    closed_at: Mapped[datetime | None]
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    cancel_reason: Mapped[str | None] = mapped_column(String(1000))
    cancelled_at: Mapped[datetime | None]

    created_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now, onupdate=now)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012

    project: Mapped[Project] = relationship(back_populates="sections")
    custodians: Mapped[list[SectionCustodian]] = relationship(
        back_populates="section", cascade="all, delete-orphan", order_by="SectionCustodian.position"
    )
    documents: Mapped[list[TenderDocument]] = relationship(
        back_populates="section",
        order_by="TenderDocument.uploaded_at",
        primaryjoin="and_(Section.id == TenderDocument.section_id, "
        "TenderDocument.removed_at.is_(None))",
        viewonly=True,
    )
    findings: Mapped[list[ReviewFinding]] = relationship(
        back_populates="section", order_by="ReviewFinding.created_at"
    )
    clarifications: Mapped[list[Clarification]] = relationship(
        back_populates="section", order_by="Clarification.issued_at"
    )
    objections: Mapped[list[Objection]] = relationship(
        back_populates="section", order_by="Objection.raised_at"
    )
    registrations: Mapped[list[Registration]] = relationship(
        back_populates="section", order_by="Registration.registered_at"
    )

    @property
    def etag(self) -> str:
        """Strong ETag of the current version (``If-Match`` on draft edits)."""
        return f'"{self.id.hex}-{self.version}"'

    @property
    def paused(self) -> bool:
        """An objection to the documents is unanswered: the procedure is paused (SSTL 22)."""
        return any(o.status == ObjectionStatus.OPEN for o in self.objections)

    @property
    def is_public(self) -> bool:
        return self.state in PUBLIC_STATES

    @property
    def open_findings(self) -> list[ReviewFinding]:
        return [
            f
            for f in self.findings
            if f.review_round == self.review_round and f.status == FindingStatus.OPEN
        ]


class SectionCustodian(IdMixin, Base):
    """An opening-key custodian (开标密钥保管人) of a section: center staff, a supervisor or
    the agency. The custodian supplies an X25519 public key (PEM); at publication share
    ``share_index`` of the opening key is sealed to it."""

    __tablename__ = "section_custodians"
    __table_args__ = (
        UniqueConstraint("section_id", "user_id"),
        UniqueConstraint("section_id", "position"),
        CheckConstraint("position >= 1", name="position_positive"),
        CheckConstraint("share_index IS NULL OR share_index = position", name="share_index"),
    )

    section_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sections.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    #: 1..n, the order of the custodians = the share index once published.
    position: Mapped[int] = mapped_column(Integer)
    #: the role the custodian acts in: center_staff, supervisor or agency_staff.
    role: Mapped[str] = mapped_column(String(32))
    public_key_pem: Mapped[str | None] = mapped_column(Text)
    key_submitted_at: Mapped[datetime | None]
    share_index: Mapped[int | None] = mapped_column(Integer)
    #: the HPKE-sealed share (``EncryptedShare.to_dict()``), public material.
    encrypted_share: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    share_commitment: Mapped[str | None] = mapped_column(String(64))

    section: Mapped[Section] = relationship(back_populates="custodians")
    user: Mapped[User] = relationship()


class TenderDocument(StoredFileMixin, IdMixin, Base):
    """A file of the section's tender documents, clarifications or amendments (招标文件)."""

    __tablename__ = "tender_documents"
    __table_args__ = (CheckConstraint("size >= 0", name="size_non_negative"),)

    section_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sections.id"), index=True)
    kind: Mapped[DocumentKind] = mapped_column(
        enum_column(DocumentKind, "document_kind"), default=DocumentKind.TENDER_DOCUMENTS
    )
    uploaded_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    uploaded_at: Mapped[datetime] = mapped_column(default=now)
    #: removed from a draft (kept for the record: earlier findings refer to it).
    removed_at: Mapped[datetime | None]

    section: Mapped[Section] = relationship(back_populates="documents")
    uploaded_by: Mapped[User] = relationship()


class ReviewFinding(IdMixin, Base):
    """One clause flagged by the fair-competition review (公平竞争审查意见).

    Open findings of the current review round block publication until the center overrides
    each with a written reason (audited).
    """

    __tablename__ = "review_findings"
    __table_args__ = (
        CheckConstraint(
            "status = 'open' OR (override_reason IS NOT NULL AND overridden_by_id IS NOT NULL "
            "AND overridden_at IS NOT NULL)",
            name="override_complete",
        ),
        Index("ix_review_findings_section_round", "section_id", "review_round"),
    )

    section_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sections.id"))
    document_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tender_documents.id"))
    review_round: Mapped[int] = mapped_column(Integer, default=1)
    rule_id: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200), default="")
    severity: Mapped[str] = mapped_column(String(16), default="")
    clause: Mapped[str] = mapped_column(Text)  # the flagged text
    location: Mapped[str] = mapped_column(String(255), default="")
    legal_basis: Mapped[str] = mapped_column(String(500), default="")
    suggestion: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[FindingStatus] = mapped_column(
        enum_column(FindingStatus, "finding_status"), default=FindingStatus.OPEN
    )
    override_reason: Mapped[str | None] = mapped_column(Text)
    overridden_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    overridden_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=now)

    section: Mapped[Section] = relationship(back_populates="findings")
    document: Mapped[TenderDocument | None] = relationship()


class Clarification(IdMixin, Base):
    """A clarification or amendment of the tender documents (澄清 / 修改), published to every
    registered bidder. If it affects bids and fewer than 15 days remain, the deadline
    moves (ZTBF 23, SSTL 21); the old and new deadlines are kept."""

    __tablename__ = "clarifications"
    __table_args__ = (
        CheckConstraint("new_deadline >= previous_deadline", name="deadline_not_earlier"),
    )

    section_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sections.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    document_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tender_documents.id"))
    affects_bids: Mapped[bool] = mapped_column(Boolean, default=True)
    issued_at: Mapped[datetime] = mapped_column(default=now)
    issued_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    previous_deadline: Mapped[datetime]
    new_deadline: Mapped[datetime]

    section: Mapped[Section] = relationship(back_populates="clarifications")
    document: Mapped[TenderDocument | None] = relationship()

    @property
    def deadline_moved(self) -> bool:
        return self.new_deadline != self.previous_deadline


class Objection(IdMixin, Base):
    """An objection to the tender documents (对招标文件的异议, SSTL 22) by a registered bidder.

    Must be raised ≥ 10 days before the deadline; answered within 3 days; while open the
    procedure is paused (see the module docstring)."""

    __tablename__ = "objections"
    __table_args__ = (
        CheckConstraint(
            "(status = 'answered') = (answer IS NOT NULL AND answered_at IS NOT NULL)",
            name="answer_complete",
        ),
    )

    section_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sections.id"), index=True)
    bidder_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"), index=True)
    raised_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(Text)
    raised_at: Mapped[datetime] = mapped_column(default=now)
    #: 答复期限: raised_at + 3 days (SSTL 22).
    answer_due_at: Mapped[datetime]
    status: Mapped[ObjectionStatus] = mapped_column(
        enum_column(ObjectionStatus, "objection_status"), default=ObjectionStatus.OPEN
    )
    answer: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[datetime | None]
    answered_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))

    section: Mapped[Section] = relationship(back_populates="objections")
    bidder: Mapped[Organisation] = relationship()


class Registration(IdMixin, Base):
    """A bidder's registration for a section (报名 / 获取招标文件)."""

    __tablename__ = "registrations"
    __table_args__ = (UniqueConstraint("section_id", "bidder_id"),)

    section_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sections.id"), index=True)
    bidder_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"), index=True)
    registered_at: Mapped[datetime] = mapped_column(default=now)
    registered_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))

    section: Mapped[Section] = relationship(back_populates="registrations")
    bidder: Mapped[Organisation] = relationship()

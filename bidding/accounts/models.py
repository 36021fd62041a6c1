"""Accounts (账户) models: trading centers and their partnerships, organisations, users,
role grants, API tokens and login attempts."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bidding.core.clock import now
from bidding.core.db import Base, IdMixin
from bidding.core.roles import Role

__all__ = [
    "ApiToken",
    "CenterPartnership",
    "LoginAttempt",
    "Organisation",
    "OrganisationKind",
    "PartnershipScope",
    "Role",
    "RoleGrant",
    "TradingCenter",
    "User",
]


def _enum(cls: type[StrEnum], name: str) -> Enum:
    """A StrEnum column stored as its value (VARCHAR + CHECK, portable)."""
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class OrganisationKind(StrEnum):
    TENDERER = "tenderer"  # 招标人 / 采购人
    AGENCY = "agency"  # 招标代理机构
    BIDDER = "bidder"  # 投标人 / 供应商
    GUARANTOR = "guarantor"  # 银行, 保险公司, 担保公司
    CENTER = "center"  # 交易中心 (as a legal entity)


class PartnershipScope(StrEnum):
    REMOTE_EVALUATION = "remote_evaluation"  # 远程异地评标
    EXPERT_SHARING = "expert_sharing"  # 专家资源共享


class TradingCenter(IdMixin, Base):
    """A public-resource trading center (公共资源交易中心), identified by its region code."""

    __tablename__ = "trading_centers"
    __table_args__ = (CheckConstraint("length(region_code) = 6", name="region_code_length"),)

    name: Mapped[str] = mapped_column(String(200), unique=True)
    region_code: Mapped[str] = mapped_column(String(6), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=now)


class CenterPartnership(IdMixin, Base):
    """An agreement between two centers (跨区域合作协议), e.g. for remote evaluation.

    Stored once per pair and scope with ``center_a_id`` < ``center_b_id`` is *not* required;
    the service refuses a second row for the same unordered pair and scope.
    """

    __tablename__ = "center_partnerships"
    __table_args__ = (
        CheckConstraint("center_a_id <> center_b_id", name="distinct_centers"),
        CheckConstraint("until IS NULL OR until >= since", name="period"),
        UniqueConstraint("center_a_id", "center_b_id", "scope"),
    )

    center_a_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("trading_centers.id"))
    center_b_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("trading_centers.id"))
    scope: Mapped[PartnershipScope] = mapped_column(_enum(PartnershipScope, "partnership_scope"))
    since: Mapped[date]
    until: Mapped[date | None]
    created_at: Mapped[datetime] = mapped_column(default=now)

    center_a: Mapped[TradingCenter] = relationship(foreign_keys=[center_a_id])
    center_b: Mapped[TradingCenter] = relationship(foreign_keys=[center_b_id])

    def other(self, center_id: uuid.UUID) -> TradingCenter:
        return self.center_b if self.center_a_id == center_id else self.center_a

    def active_on(self, day: date) -> bool:
        return self.since <= day and (self.until is None or day <= self.until)


class Organisation(IdMixin, Base):
    """A legal entity taking part (单位): tenderer, agency, bidder, guarantor or center."""

    __tablename__ = "organisations"
    __table_args__ = (CheckConstraint("length(credit_code) = 18", name="credit_code_length"),)

    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[OrganisationKind] = mapped_column(_enum(OrganisationKind, "organisation_kind"))
    credit_code: Mapped[str] = mapped_column(String(18), unique=True)
    center_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("trading_centers.id"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=now)

    center: Mapped[TradingCenter | None] = relationship()


class User(IdMixin, Base):
    """A person who signs in (用户). Flask-Login reads the ``is_*`` properties and
    :meth:`get_id`, whose session version makes a password change or a disable end every
    existing browser session."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("locale IN ('zh_CN', 'en')", name="locale"),
        CheckConstraint("session_version >= 1", name="session_version"),
    )

    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    locale: Mapped[str] = mapped_column(String(8), default="zh_CN")
    center_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("trading_centers.id"), index=True
    )
    organisation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organisations.id"), index=True
    )
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=now)
    last_login_at: Mapped[datetime | None]

    center: Mapped[TradingCenter | None] = relationship()
    organisation: Mapped[Organisation | None] = relationship()
    grants: Mapped[list[RoleGrant]] = relationship(
        back_populates="user",
        foreign_keys="RoleGrant.user_id",
        cascade="all, delete-orphan",
        order_by="RoleGrant.granted_at",
    )

    # Flask-Login protocol
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"

    @property
    def roles(self) -> frozenset[Role]:
        return frozenset(g.role for g in self.grants)


class RoleGrant(IdMixin, Base):
    """A role held by a user within exactly one scope: a center or an organisation."""

    __tablename__ = "role_grants"
    __table_args__ = (
        CheckConstraint(
            "(center_id IS NULL) <> (organisation_id IS NULL)", name="exactly_one_scope"
        ),
        Index("ix_role_grants_user_role", "user_id", "role"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[Role] = mapped_column(_enum(Role, "role"))
    center_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("trading_centers.id"), index=True
    )
    organisation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organisations.id"), index=True
    )
    granted_at: Mapped[datetime] = mapped_column(default=now)
    granted_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))

    user: Mapped[User] = relationship(back_populates="grants", foreign_keys=[user_id])
    center: Mapped[TradingCenter | None] = relationship()
    organisation: Mapped[Organisation | None] = relationship()


class ApiToken(IdMixin, Base):
    """A bearer token for the API (接口令牌). Only its SHA-256 is stored; the token itself
    is shown once when issued. ``prefix`` (the first characters) identifies it in lists."""

    __tablename__ = "api_tokens"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100), default="")
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=now)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()

    def state_at(self, at: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if at >= self.expires_at:
            return "expired"
        return "active"


class LoginAttempt(IdMixin, Base):
    """One password sign-in attempt (登录尝试), the throttle's memory.

    Kept in the database so the limit holds across every gunicorn process and node.
    """

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_username_at", "username", "at"),
        Index("ix_login_attempts_address_at", "address", "at"),
    )

    username: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(64))
    succeeded: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(default=now)

"""Roles (角色) and the acting party (操作人) every service and view works with.

Kept in ``bidding.core`` so every domain can check access without importing the accounts
package's models. A role is always granted *within a scope*: center roles within a trading
center, organisation roles within an organisation.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    """Every role a user can hold. Values are stable (stored in grants and token scopes)."""

    CENTER_ADMIN = "center_admin"  # 交易中心管理员
    CENTER_STAFF = "center_staff"  # 交易中心工作人员 (见证)
    SUPERVISOR = "supervisor"  # 监督
    AGENCY_STAFF = "agency_staff"  # 招标代理
    TENDERER_REP = "tenderer_rep"  # 招标人代表
    BIDDER_REP = "bidder_rep"  # 投标人代表
    EXPERT = "expert"  # 评标专家
    GUARANTOR = "guarantor"  # 担保机构 (银行, 保险公司, 担保公司)


#: Roles granted within a trading center (the expert: within the center's pool).
CENTER_ROLES = frozenset({Role.CENTER_ADMIN, Role.CENTER_STAFF, Role.SUPERVISOR, Role.EXPERT})
#: Roles granted within an organisation, with the organisation kind each one needs.
ORGANISATION_ROLE_KINDS: dict[Role, str] = {
    Role.AGENCY_STAFF: "agency",
    Role.TENDERER_REP: "tenderer",
    Role.BIDDER_REP: "bidder",
    Role.GUARANTOR: "guarantor",
}
#: Center-side roles that may see every organisation and user of their center.
CENTER_SIDE = frozenset({Role.CENTER_ADMIN, Role.CENTER_STAFF, Role.SUPERVISOR})


@dataclass(frozen=True)
class Grant:
    """One role held within one scope (a center or an organisation)."""

    role: Role
    center_id: uuid.UUID | None = None
    organisation_id: uuid.UUID | None = None
    id: uuid.UUID | None = None


@dataclass(frozen=True)
class Actor:
    """Who is acting in this request: a user, with the grants this request may use.

    A bearer token narrows ``grants`` to the roles in its scopes. Satisfies the audit
    log's ``Actor`` protocol (``id`` and ``username``).
    """

    id: uuid.UUID
    username: str
    display_name: str = ""
    center_id: uuid.UUID | None = None
    organisation_id: uuid.UUID | None = None
    grants: tuple[Grant, ...] = ()
    via: str = "session"  # "session" | "token" | "system"
    token_id: uuid.UUID | None = None
    locale: str = "zh_CN"
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def roles(self) -> frozenset[Role]:
        return frozenset(g.role for g in self.grants)

    def has_role(self, *roles: Role | str) -> bool:
        """Holds any of ``roles`` in any scope."""
        wanted = {Role(r) for r in roles}
        return any(g.role in wanted for g in self.grants)

    def grants_for(self, *roles: Role | str) -> list[Grant]:
        wanted = {Role(r) for r in roles}
        return [g for g in self.grants if g.role in wanted]

    def centers_with(self, *roles: Role | str) -> set[uuid.UUID]:
        """The centers where the actor holds any of ``roles``."""
        return {g.center_id for g in self.grants_for(*roles) if g.center_id is not None}

    def organisations_with(self, *roles: Role | str) -> set[uuid.UUID]:
        """The organisations where the actor holds any of ``roles``."""
        return {g.organisation_id for g in self.grants_for(*roles) if g.organisation_id is not None}

    def has_role_at(
        self,
        roles: Iterable[Role | str],
        *,
        center_id: uuid.UUID | None = None,
        organisation_id: uuid.UUID | None = None,
    ) -> bool:
        """Holds one of ``roles`` scoped to ``center_id`` or to ``organisation_id``."""
        wanted = {Role(r) for r in roles}
        for g in self.grants:
            if g.role not in wanted:
                continue
            if center_id is not None and g.center_id == center_id:
                return True
            if organisation_id is not None and g.organisation_id == organisation_id:
                return True
        return False

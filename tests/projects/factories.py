"""Small factories for the projects tests: centers, organisations, users with grants, and
actors; projects and sections in a chosen state."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from bidding.accounts.creditcode import make_credit_code
from bidding.accounts.models import Organisation, OrganisationKind, RoleGrant, TradingCenter, User
from bidding.core import db
from bidding.core.clock import now
from bidding.core.roles import Actor, Grant, Role
from crypto.pki import public_key_to_pem

_seq = itertools.count(1)


def _n() -> int:
    return next(_seq)


def make_center(name: str | None = None, region_code: str | None = None) -> TradingCenter:
    n = _n()
    center = TradingCenter(
        name=name or f"测试交易中心{n}", region_code=region_code or f"{540200 + n:06d}"[-6:]
    )
    db.get_session().add(center)
    db.get_session().flush()
    return center


def make_org(
    kind: OrganisationKind, center: TradingCenter | None, name: str | None = None
) -> Organisation:
    n = _n()
    org = Organisation(
        name=name or f"{kind.value}单位{n}",
        kind=kind,
        credit_code=make_credit_code("540200", f"{n:08d}"),
        center_id=center.id if center is not None else None,
    )
    db.get_session().add(org)
    db.get_session().flush()
    return org


def make_user(
    *roles: tuple[Role, TradingCenter | Organisation],
    username: str | None = None,
) -> tuple[User, Actor]:
    """A user holding ``roles`` (each within a center or an organisation) and its actor."""
    n = _n()
    user = User(
        username=username or f"user{n}",
        display_name=f"用户{n}",
        password_hash="x",
    )
    s = db.get_session()
    s.add(user)
    s.flush()
    grants = []
    for role, scope in roles:
        is_center = isinstance(scope, TradingCenter)
        row = RoleGrant(
            user_id=user.id,
            role=role,
            center_id=scope.id if is_center else None,
            organisation_id=None if is_center else scope.id,
        )
        s.add(row)
        s.flush()
        if is_center:
            user.center_id = scope.id
        else:
            user.organisation_id = scope.id
        grants.append(
            Grant(
                role=role,
                center_id=row.center_id,
                organisation_id=row.organisation_id,
                id=row.id,
            )
        )
    s.flush()
    actor = Actor(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        center_id=user.center_id,
        organisation_id=user.organisation_id,
        grants=tuple(grants),
    )
    return user, actor


def custodian_keypair() -> tuple[X25519PrivateKey, str]:
    key = X25519PrivateKey.generate()
    return key, public_key_to_pem(key.public_key()).decode()


@dataclass
class World:
    """One center with a tenderer, an agency, two bidders' worth of staff, and actors."""

    center: Any
    tenderer: Any
    agency: Any
    bidders: list[Any]
    agent: Actor  # agency_staff of the agency
    agent_user: Any
    tenderer_rep: Actor
    staff: Actor  # center_staff
    staff_user: Any
    supervisor: Actor
    supervisor_user: Any
    bidder_reps: list[Actor]
    outsider: Actor  # agency staff of another agency in another center
    users: dict[uuid.UUID, Any] = field(default_factory=dict)  # actor id → User
    custodian_keys: dict[uuid.UUID, X25519PrivateKey] = field(default_factory=dict)


def make_world(bidders: int = 4) -> World:
    center = make_center()
    other_center = make_center()
    tenderer = make_org(OrganisationKind.TENDERER, center, name="某市人民医院")
    agency = make_org(OrganisationKind.AGENCY, center, name="某招标代理有限公司")
    other_agency = make_org(OrganisationKind.AGENCY, other_center)
    bidder_orgs = [make_org(OrganisationKind.BIDDER, center) for _ in range(bidders)]
    made = [
        make_user((Role.AGENCY_STAFF, agency)),
        make_user((Role.TENDERER_REP, tenderer)),
        make_user((Role.CENTER_STAFF, center)),
        make_user((Role.SUPERVISOR, center)),
        make_user((Role.AGENCY_STAFF, other_agency)),
    ]
    bidder_made = [make_user((Role.BIDDER_REP, b)) for b in bidder_orgs]
    (agent_user, agent), (_, rep), (staff_user, staff), (sup_user, sup), (_, outsider) = made
    reps = [a for _, a in bidder_made]
    return World(
        users={a.id: u for u, a in [*made, *bidder_made]},
        center=center,
        tenderer=tenderer,
        agency=agency,
        bidders=bidder_orgs,
        agent=agent,
        agent_user=agent_user,
        tenderer_rep=rep,
        staff=staff,
        staff_user=staff_user,
        supervisor=sup,
        supervisor_user=sup_user,
        bidder_reps=reps,
        outsider=outsider,
    )


def timeline(start: datetime | None = None, days: int = 25) -> dict[str, datetime]:
    """A lawful timeline: issued now, 5+ days on sale, deadline ``days`` later."""
    t0 = (start or now()) + timedelta(hours=1)
    deadline = t0 + timedelta(days=days)
    return {
        "documents_issued_at": t0,
        "sale_start": t0,
        "sale_end": t0 + timedelta(days=8),
        "objection_cutoff": deadline - timedelta(days=10),
        "bid_deadline": deadline,
    }


def section_fields(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": "门诊楼医疗设备采购",
        "estimated_price": Decimal("5000000.00"),
        "maximum_price": Decimal("4900000.00"),
        "bid_deposit": Decimal("50000.00"),
        "bid_validity_days": 90,
        "committee_size": 5,
        "committee_experts": 4,
    }
    values.update(overrides)
    return values


# --------------------------------------------------------------------------- lifecycle

CLEAN_TEXT = (
    "第一章 招标公告\n"
    "本项目为门诊楼医疗设备采购，投标人应具备独立承担民事责任的能力。\n"
    "投标人应按招标文件要求提交投标文件。\n"
)


def register(w: World, *, kind: str = "tendering", subject: str = "goods", agency: bool = True):  # type: ignore[no-untyped-def]
    from bidding.projects import services
    from bidding.projects.models import ProjectKind, Subject

    return services.register_project(
        w.agent if agency else w.tenderer_rep,
        name="某市人民医院门诊楼医疗设备采购项目",
        kind=ProjectKind(kind),
        subject=Subject(subject),
        tenderer_id=w.tenderer.id,
        agency_id=w.agency.id if agency else None,
        center_id=w.center.id,
        region_code="540200",
        amount=Decimal("8000000.00"),
        funding_source="财政资金",
    )


def custodian_specs(w: World) -> list[Any]:
    from bidding.projects.services import CustodianSpec

    return [
        CustodianSpec(w.staff.id, Role.CENTER_STAFF),
        CustodianSpec(w.supervisor.id, Role.SUPERVISOR),
        CustodianSpec(w.agent.id, Role.AGENCY_STAFF),
    ]


def draft_section(w: World, project: Any = None, **overrides: Any) -> Any:
    from bidding.projects import services

    project = project or register(w)
    fields = section_fields(**overrides)
    fields.setdefault("timeline", timeline())
    return services.create_section(
        w.agent,
        project,
        custodians=custodian_specs(w),
        custodian_threshold=2,
        **fields,
    )


def submit_keys(w: World, section: Any) -> None:
    from bidding.projects import services

    for actor in (w.staff, w.supervisor, w.agent):
        key, pem = custodian_keypair()
        w.custodian_keys[actor.id] = key
        services.set_custodian_key(actor, section, pem)


def upload_text(w: World, section: Any, text: str = CLEAN_TEXT, name: str = "招标文件.txt") -> Any:
    import io

    from bidding.projects import services

    data = text.encode("utf-8")
    return services.upload_document(
        w.agent,
        section,
        io.BytesIO(data),
        filename=name,
        content_type="text/plain",
        length=len(data),
    )


def published_section(w: World, project: Any = None, **overrides: Any) -> Any:
    """A section taken through review and publication (clean documents, keys in)."""
    from bidding.projects import services

    section = draft_section(w, project, **overrides)
    submit_keys(w, section)
    upload_text(w, section)
    services.submit_for_review(w.agent, section)
    services.prepare_publication(w.agent, section)
    return services.publish_section(w.agent, section)

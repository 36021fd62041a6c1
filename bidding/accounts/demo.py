"""The demo data set (演示数据): the Shigatse trading center, its partner centers in the
provinces that pair with it for remote evaluation, one organisation per kind and one user
per role. ``seed_demo`` is idempotent: running it twice changes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from bidding.accounts import services
from bidding.accounts.creditcode import make_credit_code
from bidding.accounts.models import (
    CenterPartnership,
    Organisation,
    OrganisationKind,
    PartnershipScope,
    TradingCenter,
    User,
)
from bidding.core.roles import CENTER_ROLES, Role

#: The password of every demo account (demo only: change it on any shared machine).
DEMO_PASSWORD = "Sunbid-demo-2026"  # noqa: S105 (published demo password)

HOME_CENTER = ("日喀则市公共资源交易中心", "540200")
PARTNER_CENTERS = (
    ("上海市公共资源交易中心", "310000"),
    ("山东省公共资源交易中心", "370000"),
    ("黑龙江省公共资源交易中心", "230000"),
    ("吉林省公共资源交易中心", "220000"),
)
PARTNERSHIP_SINCE = date(2024, 1, 1)

#: (name, kind, region of registration, organisation code body)
ORGANISATIONS = (
    ("日喀则市城市建设投资有限公司（演示）", OrganisationKind.TENDERER, "540200", "MA6T0E01"),
    ("西藏雪域工程招标代理有限公司（演示）", OrganisationKind.AGENCY, "540100", "MA6T0E02"),
    ("上海浦江建设工程有限公司（演示）", OrganisationKind.BIDDER, "310000", "MA1F0E03"),
    ("日喀则市融资担保有限公司（演示）", OrganisationKind.GUARANTOR, "540200", "MA6T0E04"),
)

#: (username, display name, role, organisation kind or None for the home center)
USERS = (
    ("center.admin", "次仁（中心管理员）", Role.CENTER_ADMIN, None),
    ("center.staff", "卓玛（中心见证）", Role.CENTER_STAFF, None),
    ("supervisor", "王监督", Role.SUPERVISOR, None),
    ("agency", "李代理", Role.AGENCY_STAFF, OrganisationKind.AGENCY),
    ("tenderer", "张招标", Role.TENDERER_REP, OrganisationKind.TENDERER),
    ("bidder", "陈投标", Role.BIDDER_REP, OrganisationKind.BIDDER),
    ("expert", "刘专家", Role.EXPERT, None),
    ("guarantor", "赵保函", Role.GUARANTOR, OrganisationKind.GUARANTOR),
)


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    role: str


def _center(session: Session, name: str, region: str) -> TradingCenter:
    center = session.scalar(select(TradingCenter).where(TradingCenter.region_code == region))
    if center is None:
        center = services.create_center(None, name=name, region_code=region)
    return center


def _partnership(session: Session, home: TradingCenter, partner: TradingCenter) -> None:
    exists = session.scalar(
        select(CenterPartnership.id).where(
            CenterPartnership.scope == PartnershipScope.REMOTE_EVALUATION,
            (
                (CenterPartnership.center_a_id == home.id)
                & (CenterPartnership.center_b_id == partner.id)
            )
            | (
                (CenterPartnership.center_a_id == partner.id)
                & (CenterPartnership.center_b_id == home.id)
            ),
        )
    )
    if exists is None:
        services.create_partnership(None, home, partner, since=PARTNERSHIP_SINCE)


def seed_demo(session: Session) -> list[DemoLogin]:
    """Create whatever of the demo is missing and return the demo logins."""
    home = _center(session, *HOME_CENTER)
    for name, region in PARTNER_CENTERS:
        _partnership(session, home, _center(session, name, region))

    orgs: dict[OrganisationKind, Organisation] = {}
    for name, kind, region, body in ORGANISATIONS:
        code = make_credit_code(region, body)
        org = session.scalar(select(Organisation).where(Organisation.credit_code == code))
        if org is None:
            org = services.create_organisation(
                None, name=name, kind=kind, credit_code=code, center=home
            )
        orgs[kind] = org

    logins = []
    for username, display_name, role, org_kind in USERS:
        org = orgs[org_kind] if org_kind is not None else None
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            user = services.create_user(
                None,
                username=username,
                display_name=display_name,
                password=DEMO_PASSWORD,
                center=home,
                organisation=org,
            )
        if role in CENTER_ROLES:
            services.grant_role(None, user, role, center=home)
        else:
            services.grant_role(None, user, role, organisation=org)
        logins.append(DemoLogin(username=username, password=DEMO_PASSWORD, role=role.value))
    session.flush()
    return logins

"""Accounts services (账户服务): centers, organisations, users, roles, passwords, sign-in
with throttling, and API tokens.

Every function takes the acting party first (``None`` = the platform itself), checks its
rule, changes state, records an audit event, flushes and returns; none commits. Access
control (who may call what) is the views' job through :mod:`bidding.core.auth`.

One exception to "the caller's transaction decides": :func:`authenticate` records failed
attempts, which must outlive the refused request. Callers that roll back on a refusal must
commit first (the login views do); see :func:`authenticate`.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

from flask import current_app, has_app_context
from flask_babel import gettext as _
from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from bidding.accounts.creditcode import (
    credit_code_problem,
    normalise_credit_code,
    region_code_problem,
)
from bidding.accounts.models import (
    ApiToken,
    CenterPartnership,
    LoginAttempt,
    Organisation,
    OrganisationKind,
    PartnershipScope,
    RoleGrant,
    TradingCenter,
    User,
)
from bidding.accounts.passwords import dummy_verify, hash_password, needs_rehash, verify_password
from bidding.core import db
from bidding.core.audit import record_event
from bidding.core.clock import now
from bidding.core.errors import (
    Conflict,
    DomainError,
    ErrorCode,
    NotFound,
    RuleViolation,
    TooManyAttempts,
)
from bidding.core.pagination import Page, paginate
from bidding.core.roles import CENTER_ROLES, ORGANISATION_ROLE_KINDS, Actor, Grant, Role

MIN_PASSWORD_LENGTH: Final = 10
MAX_PASSWORD_LENGTH: Final = 256
TOKEN_PREFIX: Final = "sbt_"  # noqa: S105 (a label, not a secret)
LOCALES: Final = ("zh_CN", "en")
#: How long failed attempts are kept for the record before the sweep prunes them.
ATTEMPT_RETENTION: Final = timedelta(days=30)
_USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
_UNSET: Any = object()


class InvalidCredentials(DomainError):
    code = ErrorCode.INVALID_CREDENTIALS
    http_status = 401


class AccountDisabled(DomainError):
    code = ErrorCode.ACCOUNT_DISABLED
    http_status = 403


class TokenError(DomainError):
    code = ErrorCode.INVALID_TOKEN
    http_status = 401


@dataclass(frozen=True)
class LoginPolicy:
    """The sign-in throttle: ``max_attempts`` failures per account per ``window`` seconds,
    ``address_factor`` times as many per client address."""

    max_attempts: int = 10
    window: int = 60
    address_factor: int = 3

    @classmethod
    def from_settings(cls) -> LoginPolicy:
        settings = _settings()
        if settings is None:
            return cls()
        return cls(max_attempts=settings.login_max_attempts, window=settings.login_window)


@dataclass(frozen=True)
class IssuedToken:
    """A new token: ``secret`` is shown once and never stored."""

    token: ApiToken
    secret: str


def _settings() -> Any:
    if has_app_context():
        return current_app.extensions.get("sunbid_settings")
    return None


def _session() -> Session:
    return db.get_session()


# --------------------------------------------------------------------------- centers


def create_center(actor: Actor | None, *, name: str, region_code: str) -> TradingCenter:
    """Register a trading center (交易中心) under its 6-digit region code."""
    name = name.strip()
    region_code = region_code.strip()
    problem = region_code_problem(region_code)
    if problem is not None:
        raise RuleViolation(
            _("行政区划代码应为 6 位数字，且前两位为有效的省级代码（如日喀则市 540200）。"),
            code=ErrorCode.INVALID_REGION_CODE,
            details={"region_code": region_code, "reason": problem},
        )
    if not name:
        raise RuleViolation(_("请填写交易中心名称。"), details={"field": "name"})
    s = _session()
    clash = s.scalar(
        select(TradingCenter).where(
            or_(TradingCenter.region_code == region_code, TradingCenter.name == name)
        )
    )
    if clash is not None:
        raise Conflict(
            _("该行政区划或名称的交易中心已存在。"),
            code=ErrorCode.DUPLICATE_CENTER,
            details={"center_id": str(clash.id)},
        )
    center = TradingCenter(name=name, region_code=region_code)
    s.add(center)
    s.flush()
    record_event(
        actor,
        "center.created",
        "trading_center",
        center.id,
        {"name": name, "region_code": region_code},
    )
    return center


def create_partnership(
    actor: Actor | None,
    center_a: TradingCenter,
    center_b: TradingCenter,
    *,
    scope: PartnershipScope = PartnershipScope.REMOTE_EVALUATION,
    since: date,
    until: date | None = None,
) -> CenterPartnership:
    """Record an agreement between two centers (跨区域合作, e.g. 远程异地评标)."""
    if center_a.id == center_b.id:
        raise RuleViolation(
            _("合作协议须在两个不同的交易中心之间签订。"), code=ErrorCode.INVALID_PARTNERSHIP
        )
    if until is not None and until < since:
        raise RuleViolation(
            _("协议终止日期不能早于生效日期。"),
            code=ErrorCode.INVALID_PARTNERSHIP,
            details={"since": since.isoformat(), "until": until.isoformat()},
        )
    s = _session()
    existing = s.scalar(
        select(CenterPartnership).where(
            CenterPartnership.scope == scope,
            or_(
                (CenterPartnership.center_a_id == center_a.id)
                & (CenterPartnership.center_b_id == center_b.id),
                (CenterPartnership.center_a_id == center_b.id)
                & (CenterPartnership.center_b_id == center_a.id),
            ),
        )
    )
    if existing is not None:
        raise Conflict(
            _("这两个交易中心之间已有同一范围的合作协议。"),
            code=ErrorCode.DUPLICATE_PARTNERSHIP,
            details={"partnership_id": str(existing.id)},
        )
    partnership = CenterPartnership(
        center_a=center_a, center_b=center_b, scope=scope, since=since, until=until
    )
    s.add(partnership)
    s.flush()
    record_event(
        actor,
        "center.partnership_created",
        "center_partnership",
        partnership.id,
        {
            "center_a": str(center_a.id),
            "center_b": str(center_b.id),
            "scope": str(scope),
            "since": since.isoformat(),
            "until": until.isoformat() if until else None,
        },
    )
    return partnership


def partnerships_of(center: TradingCenter) -> list[CenterPartnership]:
    """Every agreement the center is party to, oldest first."""
    stmt = (
        select(CenterPartnership)
        .where(
            or_(
                CenterPartnership.center_a_id == center.id,
                CenterPartnership.center_b_id == center.id,
            )
        )
        .order_by(CenterPartnership.since, CenterPartnership.id)
    )
    return list(_session().scalars(stmt))


def partner_centers(
    center: TradingCenter,
    *,
    scope: PartnershipScope = PartnershipScope.REMOTE_EVALUATION,
    on: date | None = None,
) -> list[TradingCenter]:
    """Centers with an agreement of ``scope`` in force on ``on`` (default: today)."""
    day = on or now().date()
    return [
        p.other(center.id) for p in partnerships_of(center) if p.scope == scope and p.active_on(day)
    ]


def centers_page(*, cursor: str | None, limit: int) -> Page[TradingCenter]:
    return paginate(
        _session(),
        select(TradingCenter),
        (TradingCenter.region_code, TradingCenter.id),
        cursor=cursor,
        limit=limit,
    )


def center_by_region(region_code: str) -> TradingCenter | None:
    return _session().scalar(select(TradingCenter).where(TradingCenter.region_code == region_code))


# --------------------------------------------------------------------------- organisations


def create_organisation(
    actor: Actor | None,
    *,
    name: str,
    kind: OrganisationKind | str,
    credit_code: str,
    center: TradingCenter | None = None,
) -> Organisation:
    """Register an organisation (单位) under its unified social credit code."""
    code = normalise_credit_code(credit_code)
    problem = credit_code_problem(code)
    if problem is not None:
        raise RuleViolation(
            _("统一社会信用代码无效：请核对 18 位代码（含最后一位校验码）。"),
            code=ErrorCode.INVALID_CREDIT_CODE,
            details={"credit_code": code, "reason": problem},
        )
    try:
        kind = OrganisationKind(kind)
    except ValueError:
        raise RuleViolation(
            _("单位类型无效。"),
            details={"field": "kind", "allowed": [k.value for k in OrganisationKind]},
        ) from None
    name = name.strip()
    if not name:
        raise RuleViolation(_("请填写单位名称。"), details={"field": "name"})
    s = _session()
    existing = s.scalar(select(Organisation).where(Organisation.credit_code == code))
    if existing is not None:
        raise Conflict(
            _("该统一社会信用代码的单位已登记。"),
            code=ErrorCode.DUPLICATE_ORGANISATION,
            details={"organisation_id": str(existing.id)},
        )
    org = Organisation(name=name, kind=kind, credit_code=code, center=center)
    s.add(org)
    s.flush()
    record_event(
        actor,
        "organisation.created",
        "organisation",
        org.id,
        {"name": name, "kind": str(kind), "credit_code": code},
    )
    return org


def organisations_page(
    *, cursor: str | None, limit: int, kind: OrganisationKind | None = None
) -> Page[Organisation]:
    stmt = select(Organisation)
    if kind is not None:
        stmt = stmt.where(Organisation.kind == kind)
    return paginate(
        _session(), stmt, (Organisation.name, Organisation.id), cursor=cursor, limit=limit
    )


def organisation_by_credit_code(code: str) -> Organisation | None:
    return _session().scalar(
        select(Organisation).where(Organisation.credit_code == normalise_credit_code(code))
    )


def all_organisations() -> list[Organisation]:
    """Every organisation by name (for the admin pages' pickers; small by nature)."""
    return list(_session().scalars(select(Organisation).order_by(Organisation.name)))


def all_centers() -> list[TradingCenter]:
    return list(_session().scalars(select(TradingCenter).order_by(TradingCenter.region_code)))


# --------------------------------------------------------------------------- users


def check_password_strength(password: str, *, username: str | None = None) -> None:
    """Refuse a weak password: shorter than 10, one character class only, or the username."""
    reason = None
    if len(password) < MIN_PASSWORD_LENGTH:
        reason = "too_short"
    elif len(password) > MAX_PASSWORD_LENGTH:
        reason = "too_long"
    else:
        classes = sum(
            [
                any(c.islower() for c in password),
                any(c.isupper() for c in password),
                any(c.isdigit() for c in password),
                any(not c.isalnum() for c in password),
            ]
        )
        # Characters outside these classes (e.g. 汉字) count as their own class.
        if any(c.isalpha() and not (c.islower() or c.isupper()) for c in password):
            classes += 1
        if classes < 2:
            reason = "one_class"
        elif username and password.lower() == username.lower():
            reason = "same_as_username"
    if reason is not None:
        raise RuleViolation(
            _(
                "口令强度不足：至少 10 个字符，须包含字母、数字、符号中的至少两类，"
                "且不能与用户名相同。"
            ),
            code=ErrorCode.WEAK_PASSWORD,
            details={"reason": reason, "min_length": MIN_PASSWORD_LENGTH},
        )


def _normalise_username(username: str) -> str:
    return username.strip().lower()


def create_user(
    actor: Actor | None,
    *,
    username: str,
    display_name: str,
    password: str,
    email: str | None = None,
    phone: str | None = None,
    locale: str = "zh_CN",
    center: TradingCenter | None = None,
    organisation: Organisation | None = None,
) -> User:
    """Create an active user (用户) with an Argon2 password hash; roles come separately."""
    name = _normalise_username(username)
    if not _USERNAME_RE.match(name):
        raise RuleViolation(
            _("用户名须为 3–64 位小写字母、数字或 . _ -，并以字母或数字开头。"),
            details={"field": "username"},
        )
    if locale not in LOCALES:
        raise RuleViolation(
            _("界面语言无效。"), details={"field": "locale", "allowed": list(LOCALES)}
        )
    display_name = display_name.strip() or name
    check_password_strength(password, username=name)
    s = _session()
    if s.scalar(select(User.id).where(User.username == name)) is not None:
        raise Conflict(
            _("该用户名已被使用。"), code=ErrorCode.DUPLICATE_USERNAME, details={"username": name}
        )
    user = User(
        username=name,
        display_name=display_name,
        password_hash=hash_password(password),
        email=(email or None),
        phone=(phone or None),
        locale=locale,
        center=center,
        organisation=organisation,
        active=True,
        session_version=1,
    )
    s.add(user)
    try:
        s.flush()
    except IntegrityError:  # a concurrent create won the race
        raise Conflict(
            _("该用户名已被使用。"), code=ErrorCode.DUPLICATE_USERNAME, details={"username": name}
        ) from None
    record_event(
        actor,
        "user.created",
        "user",
        user.id,
        {
            "username": name,
            "center_id": str(center.id) if center else None,
            "organisation_id": str(organisation.id) if organisation else None,
        },
    )
    return user


def update_user(
    actor: Actor | None,
    user: User,
    *,
    display_name: str | None = _UNSET,
    email: str | None = _UNSET,
    phone: str | None = _UNSET,
    locale: str = _UNSET,
) -> User:
    """Change a user's profile fields; only the ones given."""
    changes: dict[str, Any] = {}
    if display_name is not _UNSET and display_name is not None:
        if not display_name.strip():
            raise RuleViolation(_("请填写姓名。"), details={"field": "display_name"})
        changes["display_name"] = display_name.strip()
    if email is not _UNSET:
        changes["email"] = email or None
    if phone is not _UNSET:
        changes["phone"] = phone or None
    if locale is not _UNSET:
        if locale not in LOCALES:
            raise RuleViolation(_("界面语言无效。"), details={"field": "locale"})
        changes["locale"] = locale
    changed = {k: v for k, v in changes.items() if getattr(user, k) != v}
    for key, value in changed.items():
        setattr(user, key, value)
    if changed:
        _session().flush()
        record_event(actor, "user.updated", "user", user.id, {"fields": sorted(changed)})
    return user


def _active_admins(center_id: uuid.UUID) -> list[User]:
    stmt = (
        select(User)
        .join(RoleGrant, RoleGrant.user_id == User.id)
        .where(
            RoleGrant.role == Role.CENTER_ADMIN,
            RoleGrant.center_id == center_id,
            User.active.is_(True),
        )
    )
    return list(_session().scalars(stmt).unique())


def _refuse_last_admin(user: User, center_ids: Iterable[uuid.UUID]) -> None:
    for center_id in center_ids:
        admins = _active_admins(center_id)
        if [a.id for a in admins] == [user.id]:
            raise Conflict(
                _("这是该交易中心唯一在用的管理员账户，请先为他人授予管理员角色。"),
                code=ErrorCode.LAST_CENTER_ADMIN,
                details={"center_id": str(center_id)},
            )


def set_user_active(actor: Actor | None, user: User, active: bool) -> User:
    """Enable or disable (停用) a user. Disabling ends the user's sessions and tokens."""
    if user.active == active:
        return user
    if not active:
        _refuse_last_admin(
            user, {g.center_id for g in user.grants if g.role == Role.CENTER_ADMIN and g.center_id}
        )
        user.session_version += 1
        for token in _session().scalars(
            select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        ):
            token.revoked_at = now()
    user.active = active
    _session().flush()
    record_event(actor, "user.enabled" if active else "user.disabled", "user", user.id, None)
    return user


def set_password(actor: Actor | None, user: User, password: str) -> User:
    """Set a new password (修改口令); ends the user's other browser sessions."""
    check_password_strength(password, username=user.username)
    user.password_hash = hash_password(password)
    user.session_version += 1
    _session().flush()
    record_event(actor, "user.password_set", "user", user.id, None)
    return user


def users_page(*, cursor: str | None, limit: int, center_ids: Iterable[uuid.UUID]) -> Page[User]:
    """Users belonging to any of ``center_ids``, by username."""
    ids = list(center_ids)
    stmt = select(User).where(User.center_id.in_(ids))
    return paginate(_session(), stmt, (User.username, User.id), cursor=cursor, limit=limit)


def users_of_centers(center_ids: Iterable[uuid.UUID]) -> list[User]:
    ids = list(center_ids)
    stmt = select(User).where(User.center_id.in_(ids)).order_by(User.username)
    return list(_session().scalars(stmt))


def user_by_username(username: str) -> User | None:
    return _session().scalar(select(User).where(User.username == _normalise_username(username)))


# --------------------------------------------------------------------------- roles


def grant_role(
    actor: Actor | None,
    user: User,
    role: Role | str,
    *,
    center: TradingCenter | None = None,
    organisation: Organisation | None = None,
) -> RoleGrant:
    """Grant ``role`` within a center (center roles) or an organisation of the matching kind.

    Granting a role the user already holds in that scope returns the existing grant.
    """
    try:
        role = Role(role)
    except ValueError:
        raise RuleViolation(
            _("角色无效。"),
            code=ErrorCode.INVALID_ROLE,
            details={"role": str(role), "allowed": [r.value for r in Role]},
        ) from None
    if role in CENTER_ROLES:
        if center is None or organisation is not None:
            raise RuleViolation(
                _("该角色须授予于某一交易中心。"),
                code=ErrorCode.INVALID_ROLE,
                details={"role": role.value, "scope": "center"},
            )
    else:
        needed = ORGANISATION_ROLE_KINDS[role]
        if organisation is None or center is not None:
            raise RuleViolation(
                _("该角色须授予于某一单位。"),
                code=ErrorCode.INVALID_ROLE,
                details={"role": role.value, "scope": "organisation"},
            )
        if organisation.kind != needed:
            raise RuleViolation(
                _("该角色与单位类型不符。"),
                code=ErrorCode.INVALID_ROLE,
                details={
                    "role": role.value,
                    "organisation_kind": str(organisation.kind),
                    "required_kind": needed,
                },
            )
    for existing in user.grants:
        if (
            existing.role == role
            and existing.center_id == (center.id if center else None)
            and existing.organisation_id == (organisation.id if organisation else None)
        ):
            return existing
    grant = RoleGrant(
        role=role,
        center=center,
        organisation=organisation,
        granted_by_id=actor.id if actor is not None else None,
    )
    user.grants.append(grant)
    _session().flush()
    record_event(
        actor,
        "role.granted",
        "user",
        user.id,
        {
            "grant_id": str(grant.id),
            "role": role.value,
            "center_id": str(center.id) if center else None,
            "organisation_id": str(organisation.id) if organisation else None,
        },
    )
    return grant


def revoke_role(actor: Actor | None, grant: RoleGrant) -> None:
    """Withdraw a grant. The last active admin of a center keeps the admin role."""
    user = grant.user
    if grant.role == Role.CENTER_ADMIN and grant.center_id is not None and user.active:
        _refuse_last_admin(user, [grant.center_id])
    data = {
        "grant_id": str(grant.id),
        "role": grant.role.value,
        "center_id": str(grant.center_id) if grant.center_id else None,
        "organisation_id": str(grant.organisation_id) if grant.organisation_id else None,
    }
    user.grants.remove(grant)
    _session().flush()
    record_event(actor, "role.revoked", "user", user.id, data)


def grant_by_id(user: User, grant_id: uuid.UUID) -> RoleGrant:
    for grant in user.grants:
        if grant.id == grant_id:
            return grant
    raise NotFound(_("该角色授权不存在。"), details={"grant_id": str(grant_id)})


# --------------------------------------------------------------------------- sign-in


def _retry_after(failures: Sequence[datetime], limit: int, window: int, at: datetime) -> int:
    oldest_counted = failures[limit - 1]
    return max(1, math.ceil((oldest_counted + timedelta(seconds=window) - at).total_seconds()))


def _throttle(username: str, address: str, at: datetime, policy: LoginPolicy) -> None:
    s = _session()
    since = at - timedelta(seconds=policy.window)
    last_success = s.scalar(
        select(func.max(LoginAttempt.at)).where(
            LoginAttempt.username == username, LoginAttempt.succeeded.is_(True)
        )
    )
    start = max(since, last_success) if last_success is not None else since
    failures = list(
        s.scalars(
            select(LoginAttempt.at)
            .where(
                LoginAttempt.username == username,
                LoginAttempt.succeeded.is_(False),
                LoginAttempt.at > start,
            )
            .order_by(LoginAttempt.at.desc())
            .limit(policy.max_attempts)
        )
    )
    if len(failures) >= policy.max_attempts:
        retry = _retry_after(failures, policy.max_attempts, policy.window, at)
        raise TooManyAttempts(
            _("该账户登录失败次数过多，请 %(seconds)s 秒后再试。", seconds=retry),
            details={"retry_after": retry, "scope": "account"},
        )
    address_limit = policy.max_attempts * policy.address_factor
    address_failures = list(
        s.scalars(
            select(LoginAttempt.at)
            .where(
                LoginAttempt.address == address,
                LoginAttempt.succeeded.is_(False),
                LoginAttempt.at > since,
            )
            .order_by(LoginAttempt.at.desc())
            .limit(address_limit)
        )
    )
    if len(address_failures) >= address_limit:
        retry = _retry_after(address_failures, address_limit, policy.window, at)
        raise TooManyAttempts(
            _("来自您所在网络地址的登录失败次数过多，请 %(seconds)s 秒后再试。", seconds=retry),
            details={"retry_after": retry, "scope": "address"},
        )


def authenticate(
    username: str, password: str, address: str, *, policy: LoginPolicy | None = None
) -> User:
    """Check a username and password (登录验证) and return the user.

    Refusals: ``too_many_attempts`` (429, ``details.retry_after``) when the account has
    ``max_attempts`` failures within the window (the right password is refused too until
    the window passes) or the address has ``address_factor`` times as many;
    ``invalid_credentials`` (401, the same for an unknown user and a wrong password, which
    take about the same time); ``account_disabled`` (403, only after a right password).

    Failed attempts are added to the session: a caller that rolls back on refusal must
    commit before it does, or the throttle forgets them.
    """
    policy = policy or LoginPolicy.from_settings()
    at = now()
    name = _normalise_username(username)[:64]
    address = (address or "unknown")[:64]
    _throttle(name, address, at, policy)
    s = _session()
    user = s.scalar(select(User).where(User.username == name)) if name else None
    if user is None:
        dummy_verify(password)
        ok = False
    else:
        ok = verify_password(user.password_hash, password)
    if not ok:
        s.add(LoginAttempt(username=name, address=address, succeeded=False, at=at))
        s.flush()
        # The failure that reaches the limit is already answered with 429, so the caller
        # learns at once that further attempts (even the right password) wait.
        _throttle(name, address, at, policy)
        raise InvalidCredentials(_("用户名或口令不正确。"))
    assert user is not None
    if not user.active:
        raise AccountDisabled(_("该账户已停用，请联系交易中心管理员。"))
    s.add(LoginAttempt(username=name, address=address, succeeded=True, at=at))
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = at
    s.flush()
    record_event(
        _actor_of(user, via="session"), "user.signed_in", "user", user.id, {"address": address}
    )
    return user


def prune_login_attempts(before: datetime) -> int:
    """Delete attempts older than ``before`` (the sweep keeps 30 days)."""
    result = _session().execute(delete(LoginAttempt).where(LoginAttempt.at < before))
    return int(getattr(result, "rowcount", 0) or 0)


# --------------------------------------------------------------------------- tokens


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_token(
    actor: Actor | None,
    user: User,
    *,
    scopes: Iterable[Role | str] | None = None,
    name: str = "",
    ttl: int | None = None,
) -> IssuedToken:
    """Issue a bearer token for ``user``. ``scopes`` (default: every role the user holds)
    must be roles the user holds; the token carries only those. ``ttl`` in seconds
    defaults to the ``token_ttl`` setting."""
    if not user.active:
        raise AccountDisabled(_("该账户已停用，请联系交易中心管理员。"))
    held = user.roles
    if scopes is None:
        wanted = set(held)
    else:
        try:
            wanted = {Role(r) for r in scopes}
        except ValueError:
            raise RuleViolation(
                _("令牌权限范围中含无效角色。"),
                code=ErrorCode.INVALID_SCOPE,
                details={"allowed": sorted(r.value for r in held)},
            ) from None
        if not wanted <= held:
            raise RuleViolation(
                _("令牌权限范围只能包含您已拥有的角色。"),
                code=ErrorCode.INVALID_SCOPE,
                details={
                    "not_held": sorted(r.value for r in wanted - held),
                    "allowed": sorted(r.value for r in held),
                },
            )
    if ttl is None:
        settings = _settings()
        ttl = int(settings.token_ttl) if settings is not None else 8 * 3600
    if ttl < 1:
        raise RuleViolation(_("令牌有效期须为正数。"), details={"field": "ttl"})
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    at = now()
    token = ApiToken(
        user_id=user.id,
        name=name.strip()[:100],
        prefix=secret[:12],
        token_hash=_hash_secret(secret),
        scopes=sorted(r.value for r in wanted),
        created_at=at,
        expires_at=at + timedelta(seconds=ttl),
    )
    s = _session()
    s.add(token)
    s.flush()
    record_event(
        actor,
        "token.issued",
        "api_token",
        token.id,
        {
            "user_id": str(user.id),
            "prefix": token.prefix,
            "scopes": token.scopes,
            "expires_at": token.expires_at.isoformat(),
        },
    )
    return IssuedToken(token=token, secret=secret)


def revoke_token(actor: Actor | None, token: ApiToken) -> ApiToken:
    """Revoke a token (吊销); revoking twice is harmless."""
    if token.revoked_at is None:
        token.revoked_at = now()
        _session().flush()
        record_event(actor, "token.revoked", "api_token", token.id, {"prefix": token.prefix})
    return token


_LAST_USED_GRANULARITY = timedelta(seconds=60)


def resolve_token(secret: str) -> ApiToken:
    """The live token for ``secret``. Refusals (401): ``invalid_token``, ``token_expired``,
    ``token_revoked``; a disabled user's token: ``account_disabled`` (403)."""
    s = _session()
    token = None
    if secret.startswith(TOKEN_PREFIX) and len(secret) < 200:
        # one query for the token, its user and the user's grants (every request runs it)
        token = (
            s.scalars(
                select(ApiToken)
                .where(ApiToken.token_hash == _hash_secret(secret))
                .options(joinedload(ApiToken.user).joinedload(User.grants))
            )
            .unique()
            .one_or_none()
        )
    if token is None:
        raise TokenError(_("访问令牌无效。"), code=ErrorCode.INVALID_TOKEN)
    at = now()
    state = token.state_at(at)
    if state == "revoked":
        raise TokenError(_("访问令牌已被吊销。"), code=ErrorCode.TOKEN_REVOKED)
    if state == "expired":
        raise TokenError(_("访问令牌已过期，请重新获取。"), code=ErrorCode.TOKEN_EXPIRED)
    if not token.user.active:
        raise AccountDisabled(_("该账户已停用，请联系交易中心管理员。"))
    if token.last_used_at is None or at - token.last_used_at >= _LAST_USED_GRANULARITY:
        token.last_used_at = at
    return token


def tokens_of(user: User) -> list[ApiToken]:
    stmt = (
        select(ApiToken)
        .where(ApiToken.user_id == user.id)
        .order_by(ApiToken.created_at.desc(), ApiToken.id)
    )
    return list(_session().scalars(stmt))


# --------------------------------------------------------------------------- actors


def _actor_of(user: User, *, via: str, token: ApiToken | None = None) -> Actor:
    grants = [
        Grant(role=g.role, center_id=g.center_id, organisation_id=g.organisation_id, id=g.id)
        for g in user.grants
    ]
    if token is not None:
        allowed = set(token.scopes)
        grants = [g for g in grants if g.role.value in allowed]
    return Actor(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        center_id=user.center_id,
        organisation_id=user.organisation_id,
        grants=tuple(grants),
        via=via,
        token_id=token.id if token is not None else None,
        locale=user.locale,
    )


def actor_for_user(user: User) -> Actor:
    """The actor of a browser session: every grant the user holds."""
    return _actor_of(user, via="session")


def actor_for_token(token: ApiToken) -> Actor:
    """The actor of a bearer token: the user's grants limited to the token's scopes."""
    return _actor_of(token.user, via="token", token=token)


def load_session_user(user_id: str) -> User | None:
    """Flask-Login's loader: ``"<uuid>:<session_version>"`` → the active user, or None."""
    raw_id, _, version = user_id.partition(":")
    try:
        uid = uuid.UUID(raw_id)
        wanted = int(version)
    except ValueError:
        return None
    user = _session().get(User, uid)
    if user is None or not user.active or user.session_version != wanted:
        return None
    return user


# --------------------------------------------------------------------------- CLI


def create_user_cli(
    *,
    username: str,
    display_name: str,
    password: str,
    roles: Sequence[str],
    organisation_code: str | None,
    center_region: str | None,
) -> User:
    """``sunbid user create``: a user with roles, scoped by credit code or region code."""
    try:
        parsed_roles = [Role(r) for r in roles]
    except ValueError:
        raise RuleViolation(
            _("角色无效。"), code=ErrorCode.INVALID_ROLE, details={"roles": list(roles)}
        ) from None
    center = None
    organisation = None
    if center_region:
        center = center_by_region(center_region)
        if center is None:
            raise NotFound(_("没有该行政区划代码的交易中心。"), details={"region": center_region})
    if organisation_code:
        organisation = organisation_by_credit_code(organisation_code)
        if organisation is None:
            raise NotFound(_("没有该统一社会信用代码的单位。"), details={"code": organisation_code})
    user = create_user(
        None,
        username=username,
        display_name=display_name,
        password=password,
        center=center,
        organisation=organisation,
    )
    for role in parsed_roles:
        if role in CENTER_ROLES:
            grant_role(None, user, role, center=center)
        else:
            grant_role(None, user, role, organisation=organisation)
    return user

"""Accounts services: every refusal path, the throttle, tokens, roles."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from flask import Flask

from bidding.accounts import services
from bidding.accounts.creditcode import make_credit_code
from bidding.accounts.demo import DEMO_PASSWORD, seed_demo
from bidding.accounts.models import (
    ApiToken,
    LoginAttempt,
    OrganisationKind,
    PartnershipScope,
    TradingCenter,
    User,
)
from bidding.accounts.passwords import hash_password, verify_password
from bidding.core import db
from bidding.core.clock import Clock
from bidding.core.errors import DomainError
from bidding.core.roles import Role

PASSWORD = "Correct-horse-9"
POLICY = services.LoginPolicy(max_attempts=10, window=60)


def refused(code: str, fn: Any, *args: Any, **kwargs: Any) -> DomainError:
    with pytest.raises(DomainError) as info:
        fn(*args, **kwargs)
    assert info.value.code == code, info.value.to_dict()
    return info.value


@pytest.fixture
def center(app: Flask) -> TradingCenter:
    return services.create_center(None, name="日喀则市公共资源交易中心", region_code="540200")


@pytest.fixture
def user(center: TradingCenter) -> User:
    return services.create_user(
        None, username="Tashi", display_name="扎西", password=PASSWORD, center=center
    )


# --------------------------------------------------------------------------- centers


def test_center_region_code_is_checked(app: Flask) -> None:
    err = refused("invalid_region_code", services.create_center, None, name="X", region_code="5402")
    assert err.http_status == 422
    refused("invalid_region_code", services.create_center, None, name="X", region_code="990000")
    refused("validation_error", services.create_center, None, name=" ", region_code="310000")


def test_duplicate_center(center: TradingCenter) -> None:
    err = refused(
        "duplicate_center", services.create_center, None, name="另一个", region_code="540200"
    )
    assert err.http_status == 409
    refused(
        "duplicate_center", services.create_center, None, name=center.name, region_code="310000"
    )


def test_partnerships(center: TradingCenter, frozen_clock: Clock) -> None:
    shanghai = services.create_center(None, name="上海市公共资源交易中心", region_code="310000")
    jilin = services.create_center(None, name="吉林省公共资源交易中心", region_code="220000")
    services.create_partnership(None, center, shanghai, since=date(2024, 1, 1))
    services.create_partnership(
        None, jilin, center, since=date(2024, 1, 1), until=date(2025, 12, 31)
    )
    assert [c.region_code for c in services.partner_centers(center)] == ["310000"]
    assert services.partner_centers(center, on=date(2025, 6, 1)) != []
    assert [c.region_code for c in services.partner_centers(shanghai)] == ["540200"]
    # duplicate in either direction, self-partnership, bad period
    refused(
        "duplicate_partnership",
        services.create_partnership,
        None,
        shanghai,
        center,
        since=date(2025, 1, 1),
    )
    refused(
        "invalid_partnership",
        services.create_partnership,
        None,
        center,
        center,
        since=date(2025, 1, 1),
    )
    refused(
        "invalid_partnership",
        services.create_partnership,
        None,
        center,
        jilin,
        scope=PartnershipScope.EXPERT_SHARING,
        since=date(2025, 1, 1),
        until=date(2024, 1, 1),
    )


# --------------------------------------------------------------------------- organisations


def test_create_organisation(center: TradingCenter) -> None:
    code = make_credit_code("540200", "MA6T0001")
    org = services.create_organisation(
        None, name=" 日喀则城投 ", kind="tenderer", credit_code=code.lower(), center=center
    )
    assert org.credit_code == code and org.name == "日喀则城投"
    assert org.kind is OrganisationKind.TENDERER
    err = refused(
        "duplicate_organisation",
        services.create_organisation,
        None,
        name="又一个",
        kind="bidder",
        credit_code=code,
    )
    assert err.http_status == 409
    assert services.organisation_by_credit_code(code.lower()) is org


def test_create_organisation_refusals(app: Flask) -> None:
    err = refused(
        "invalid_credit_code",
        services.create_organisation,
        None,
        name="某公司",
        kind="bidder",
        credit_code="91350100M000100Y44",
    )
    assert err.http_status == 422 and err.details["reason"] == "check"
    refused(
        "validation_error",
        services.create_organisation,
        None,
        name="某公司",
        kind="church",
        credit_code="91350100M000100Y43",
    )
    refused(
        "validation_error",
        services.create_organisation,
        None,
        name="  ",
        kind="bidder",
        credit_code="91350100M000100Y43",
    )


# --------------------------------------------------------------------------- users


def test_password_hashing() -> None:
    stored = hash_password(PASSWORD)
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert verify_password(stored, PASSWORD)
    assert not verify_password(stored, PASSWORD + "x")
    assert not verify_password("not-a-hash", PASSWORD)


def test_create_user(user: User, center: TradingCenter) -> None:
    assert user.username == "tashi"  # normalised
    assert user.active and user.locale == "zh_CN" and user.center is center
    assert verify_password(user.password_hash, PASSWORD)
    err = refused(
        "duplicate_username",
        services.create_user,
        None,
        username="TASHI",
        display_name="x",
        password=PASSWORD,
    )
    assert err.http_status == 409


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("Short-1", "too_short"),
        ("abcdefghijkl", "one_class"),
        ("123456789012", "one_class"),
        ("ABCDEFGHIJKL", "one_class"),
        ("x" * 300 + "1", "too_long"),
        ("Tashi.2024", "same_as_username"),
    ],
)
def test_weak_passwords(app: Flask, password: str, reason: str) -> None:
    username = password.lower() if reason == "same_as_username" else "tashi"
    err = refused(
        "weak_password",
        services.create_user,
        None,
        username=username,
        display_name="扎西",
        password=password,
    )
    assert err.details["reason"] == reason and err.http_status == 422


def test_chinese_password_counts_as_its_own_class(app: Flask) -> None:
    services.check_password_strength("阳光交易平台abcd")


def test_username_and_locale_rules(app: Flask) -> None:
    for bad in ("ab", "-abc", "zhang san", "张三"):
        refused(
            "validation_error",
            services.create_user,
            None,
            username=bad,
            display_name="x",
            password=PASSWORD,
        )
    refused(
        "validation_error",
        services.create_user,
        None,
        username="abc",
        display_name="x",
        password=PASSWORD,
        locale="fr",
    )


def test_update_user_and_set_password(user: User) -> None:
    services.update_user(None, user, display_name="扎西次仁", email="t@example.cn", locale="en")
    assert (user.display_name, user.email, user.locale) == ("扎西次仁", "t@example.cn", "en")
    refused("validation_error", services.update_user, None, user, display_name=" ")
    refused("validation_error", services.update_user, None, user, locale="de")
    version = user.session_version
    services.set_password(None, user, "New-password-1")
    assert user.session_version == version + 1
    assert verify_password(user.password_hash, "New-password-1")
    refused("weak_password", services.set_password, None, user, "short")


# --------------------------------------------------------------------------- roles


def test_grant_and_revoke_roles(app: Flask) -> None:
    seed_demo(db.get_session())
    home = services.center_by_region("540200")
    assert home is not None
    u = services.create_user(
        None, username="newbie", display_name="新人", password=PASSWORD, center=home
    )
    bidder_org = services.organisation_by_credit_code(make_credit_code("310000", "MA1F0E03"))
    agency_org = services.organisation_by_credit_code(make_credit_code("540100", "MA6T0E02"))
    grant = services.grant_role(None, u, Role.CENTER_STAFF, center=home)
    assert services.grant_role(None, u, "center_staff", center=home) is grant  # idempotent
    services.grant_role(None, u, Role.BIDDER_REP, organisation=bidder_org)
    assert u.roles == {Role.CENTER_STAFF, Role.BIDDER_REP}
    # refusals: unknown role, wrong scope, organisation of the wrong kind
    refused("invalid_role", services.grant_role, None, u, "pope", center=home)
    refused("invalid_role", services.grant_role, None, u, Role.CENTER_STAFF)
    refused(
        "invalid_role", services.grant_role, None, u, Role.CENTER_STAFF, organisation=agency_org
    )
    refused("invalid_role", services.grant_role, None, u, Role.BIDDER_REP, center=home)
    refused(
        "invalid_role", services.grant_role, None, u, Role.TENDERER_REP, organisation=agency_org
    )
    services.revoke_role(None, grant)
    assert u.roles == {Role.BIDDER_REP}
    refused("not_found", services.grant_by_id, u, grant.id)


def test_last_center_admin_is_kept(app: Flask) -> None:
    seed_demo(db.get_session())
    admin = services.user_by_username("center.admin")
    assert admin is not None
    admin_grant = next(g for g in admin.grants if g.role == Role.CENTER_ADMIN)
    refused("last_center_admin", services.revoke_role, None, admin_grant)
    refused("last_center_admin", services.set_user_active, None, admin, False)
    other = services.create_user(
        None, username="admin2", display_name="二号管理员", password=PASSWORD, center=admin.center
    )
    services.grant_role(None, other, Role.CENTER_ADMIN, center=admin.center)
    services.revoke_role(None, admin_grant)
    assert Role.CENTER_ADMIN not in admin.roles


def test_disable_ends_sessions_and_tokens(user: User, frozen_clock: Clock) -> None:
    issued = services.issue_token(None, user)
    version = user.session_version
    services.set_user_active(None, user, False)
    assert not user.active and user.session_version == version + 1
    assert issued.token.revoked_at is not None
    assert services.load_session_user(f"{user.id}:{version}") is None
    services.set_user_active(None, user, True)
    assert services.load_session_user(user.get_id()) is user
    assert services.load_session_user("garbage") is None
    assert services.load_session_user(f"{user.id}:x") is None


# --------------------------------------------------------------------------- sign-in


def test_authenticate(user: User, frozen_clock: Clock) -> None:
    signed_in = services.authenticate("TASHI", PASSWORD, "10.0.0.1", policy=POLICY)
    assert signed_in is user and user.last_login_at == frozen_clock.now()


def test_wrong_and_unknown_give_the_same_answer(user: User, frozen_clock: Clock) -> None:
    wrong = refused(
        "invalid_credentials", services.authenticate, "tashi", "Wrong-pass-1", "a", policy=POLICY
    )
    unknown = refused(
        "invalid_credentials", services.authenticate, "nobody", "Wrong-pass-1", "a", policy=POLICY
    )
    assert wrong.message == unknown.message and wrong.http_status == unknown.http_status == 401
    attempts = db.get_session().query(LoginAttempt).all()
    assert sorted((a.username, a.succeeded) for a in attempts) == [
        ("nobody", False),
        ("tashi", False),
    ]


def test_disabled_account(user: User, frozen_clock: Clock) -> None:
    services.set_user_active(None, user, False)
    err = refused("account_disabled", services.authenticate, "tashi", PASSWORD, "a", policy=POLICY)
    assert err.http_status == 403
    # a wrong password on a disabled account says nothing about the account
    refused(
        "invalid_credentials", services.authenticate, "tashi", "Wrong-pass-1", "a", policy=POLICY
    )


def test_account_throttle(user: User, frozen_clock: Clock) -> None:
    for i in range(10):
        frozen_clock.move(timedelta(seconds=2))
        refused(
            "invalid_credentials" if i < 9 else "too_many_attempts",  # the 10th reaches it
            services.authenticate,
            "tashi",
            "Wrong-pass-1",
            "a",
            policy=POLICY,
        )
    # the 11th attempt within the minute is refused, even with the right password
    err = refused("too_many_attempts", services.authenticate, "tashi", PASSWORD, "b", policy=POLICY)
    assert err.http_status == 429
    # the first failure was at t+2 s, we are at t+20 s: it leaves the window at t+62 s
    assert err.details["retry_after"] == 42
    frozen_clock.move(timedelta(seconds=41))
    refused("too_many_attempts", services.authenticate, "tashi", PASSWORD, "b", policy=POLICY)
    frozen_clock.move(timedelta(seconds=1))
    assert services.authenticate("tashi", PASSWORD, "b", policy=POLICY) is user


def test_success_resets_the_account_count(user: User, frozen_clock: Clock) -> None:
    for _ in range(9):
        refused(
            "invalid_credentials",
            services.authenticate,
            "tashi",
            "Wrong-pass-1",
            "a",
            policy=POLICY,
        )
    frozen_clock.move(timedelta(seconds=1))
    services.authenticate("tashi", PASSWORD, "a", policy=POLICY)
    frozen_clock.move(timedelta(seconds=1))
    for _ in range(9):
        refused(
            "invalid_credentials",
            services.authenticate,
            "tashi",
            "Wrong-pass-1",
            "a",
            policy=POLICY,
        )
    assert services.authenticate("tashi", PASSWORD, "a", policy=POLICY) is user


def test_address_throttle(user: User, frozen_clock: Clock) -> None:
    policy = services.LoginPolicy(max_attempts=3, window=60)
    for i in range(9):  # 3 x 3 failures over different accounts from one address
        refused(
            "invalid_credentials" if i < 8 else "too_many_attempts",
            services.authenticate,
            f"guess{i}",
            "Wrong-pass-1",
            "203.0.113.9",
            policy=policy,
        )
    err = refused(
        "too_many_attempts", services.authenticate, "tashi", PASSWORD, "203.0.113.9", policy=policy
    )
    assert err.details["scope"] == "address"
    # another address is not affected
    assert services.authenticate("tashi", PASSWORD, "198.51.100.7", policy=policy) is user
    frozen_clock.move(timedelta(seconds=61))
    assert services.authenticate("tashi", PASSWORD, "203.0.113.9", policy=policy) is user


def test_policy_comes_from_settings(app: Flask) -> None:
    assert services.LoginPolicy.from_settings() == services.LoginPolicy(10, 60)


def test_prune_login_attempts(user: User, frozen_clock: Clock) -> None:
    refused(
        "invalid_credentials", services.authenticate, "tashi", "Wrong-pass-1", "a", policy=POLICY
    )
    assert services.prune_login_attempts(frozen_clock.now()) == 0
    assert services.prune_login_attempts(frozen_clock.now() + timedelta(seconds=1)) == 1


# --------------------------------------------------------------------------- tokens


def test_token_issue_resolve(user: User, center: TradingCenter, frozen_clock: Clock) -> None:
    services.grant_role(None, user, Role.CENTER_STAFF, center=center)
    issued = services.issue_token(None, user, name="客户端", ttl=3600)
    assert issued.secret.startswith("sbt_") and len(issued.secret) > 40
    token = issued.token
    assert token.token_hash != issued.secret and issued.secret not in token.token_hash
    assert token.prefix == issued.secret[:12]
    assert token.scopes == ["center_staff"]
    assert token.expires_at == frozen_clock.now() + timedelta(hours=1)
    assert services.resolve_token(issued.secret) is token
    assert token.last_used_at == frozen_clock.now()
    actor = services.actor_for_token(token)
    assert actor.via == "token" and actor.token_id == token.id and actor.has_role("center_staff")


def test_token_ttl_defaults_to_setting(user: User, frozen_clock: Clock) -> None:
    issued = services.issue_token(None, user)
    assert issued.token.expires_at - frozen_clock.now() == timedelta(hours=8)


def test_token_refusals(user: User, center: TradingCenter, frozen_clock: Clock) -> None:
    refused("invalid_token", services.resolve_token, "sbt_nonsense")
    refused("invalid_token", services.resolve_token, "not-even-prefixed")
    issued = services.issue_token(None, user, ttl=60)
    frozen_clock.move(timedelta(seconds=60))
    err = refused("token_expired", services.resolve_token, issued.secret)
    assert err.http_status == 401
    live = services.issue_token(None, user, ttl=600)
    services.revoke_token(None, live.token)
    services.revoke_token(None, live.token)  # twice is harmless
    refused("token_revoked", services.resolve_token, live.secret)
    refused("weak_password", services.set_password, None, user, "x")
    refused("validation_error", services.issue_token, None, user, ttl=0)


def test_token_of_disabled_user(user: User, frozen_clock: Clock) -> None:
    issued = services.issue_token(None, user)
    user.active = False  # disabled behind the service's back: the token still stops
    refused("account_disabled", services.resolve_token, issued.secret)
    refused("account_disabled", services.issue_token, None, user)


def test_token_scopes(user: User, center: TradingCenter, frozen_clock: Clock) -> None:
    services.grant_role(None, user, Role.CENTER_STAFF, center=center)
    services.grant_role(None, user, Role.SUPERVISOR, center=center)
    narrow = services.issue_token(None, user, scopes=["supervisor"])
    actor = services.actor_for_token(narrow.token)
    assert actor.roles == {Role.SUPERVISOR}
    assert services.actor_for_user(user).roles == {Role.CENTER_STAFF, Role.SUPERVISOR}
    err = refused("invalid_scope", services.issue_token, None, user, scopes=["center_admin"])
    assert err.details["not_held"] == ["center_admin"]
    refused("invalid_scope", services.issue_token, None, user, scopes=["emperor"])
    # a role revoked after issue is no longer carried
    supervisor = next(g for g in user.grants if g.role == Role.SUPERVISOR)
    services.revoke_role(None, supervisor)
    assert services.actor_for_token(narrow.token).roles == frozenset()


def test_tokens_of(user: User, frozen_clock: Clock) -> None:
    a = services.issue_token(None, user).token
    frozen_clock.move(timedelta(seconds=1))
    b = services.issue_token(None, user).token
    assert services.tokens_of(user) == [b, a]
    assert db.get_session().query(ApiToken).count() == 2


# --------------------------------------------------------------------------- demo, CLI


def test_seed_demo_is_idempotent(app: Flask) -> None:
    s = db.get_session()
    first = seed_demo(s)
    counts = [s.query(m).count() for m in (TradingCenter, User, ApiToken)]
    from bidding.accounts.models import CenterPartnership, Organisation, RoleGrant

    more = [s.query(m).count() for m in (CenterPartnership, Organisation, RoleGrant)]
    second = seed_demo(s)
    assert first == second
    assert counts == [s.query(m).count() for m in (TradingCenter, User, ApiToken)]
    assert more == [s.query(m).count() for m in (CenterPartnership, Organisation, RoleGrant)]
    assert more == [4, 4, 8]
    assert {login.role for login in first} == {r.value for r in Role}
    home = services.center_by_region("540200")
    assert home is not None and home.name == "日喀则市公共资源交易中心"
    assert sorted(c.region_code for c in services.partner_centers(home)) == [
        "220000",
        "230000",
        "310000",
        "370000",
    ]
    for login in first:
        assert services.authenticate(login.username, DEMO_PASSWORD, "x", policy=POLICY)


def test_create_user_cli(app: Flask) -> None:
    seed_demo(db.get_session())
    u = services.create_user_cli(
        username="cli.user",
        display_name="命令行",
        password=PASSWORD,
        roles=["center_staff", "bidder_rep"],
        organisation_code=make_credit_code("310000", "MA1F0E03"),
        center_region="540200",
    )
    assert u.roles == {Role.CENTER_STAFF, Role.BIDDER_REP}
    refused(
        "not_found",
        services.create_user_cli,
        username="cli.x1",
        display_name="x",
        password=PASSWORD,
        roles=[],
        organisation_code=None,
        center_region="110000",
    )
    refused(
        "not_found",
        services.create_user_cli,
        username="cli.x2",
        display_name="x",
        password=PASSWORD,
        roles=[],
        organisation_code="91350100M000100Y43",
        center_region=None,
    )
    refused(
        "invalid_role",
        services.create_user_cli,
        username="cli.x3",
        display_name="x",
        password=PASSWORD,
        roles=["king"],
        organisation_code=None,
        center_region="540200",
    )

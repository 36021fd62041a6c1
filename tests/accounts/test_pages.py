"""Sign-in, per-role home, user administration, token pages, CSRF and languages."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bidding.accounts.demo import DEMO_PASSWORD
from bidding.core.clock import Clock
from tests.accounts.conftest import csrf_token, login


def text(response: Any) -> str:
    return str(response.get_data(as_text=True))


def test_index_is_the_chinese_login_page(client: FlaskClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    html = text(r)
    assert '<html lang="zh-CN">' in html
    assert "用户登录" in html and "阳光交易平台" in html and 'name="csrf_token"' in html
    assert "/static/vendor/bootstrap/css/bootstrap.min.css" in html
    assert 'name="viewport"' in html


def test_english_with_lang_parameter(client: FlaskClient) -> None:
    html = text(client.get("/?lang=en"))
    assert '<html lang="en">' in html
    assert "Sign in" in html and "用户登录" not in html


def test_language_switch_sets_a_cookie(client: FlaskClient) -> None:
    r = client.get("/lang/en?next=/login")
    assert r.status_code == 302 and r.headers["Location"] == "/login"
    assert "lang=en" in r.headers["Set-Cookie"]
    assert "Sign in" in text(client.get("/login"))
    r = client.get("/lang/zh_CN?next=https://evil.example/")
    assert r.headers["Location"] == "/"
    assert "用户登录" in text(client.get("/login"))


def test_login_and_per_role_home(client: FlaskClient, demo: dict[str, Any]) -> None:
    r = login(client, "bidder")
    assert r.status_code == 302 and r.headers["Location"] == "/"
    html = text(client.get("/"))
    assert "您好，陈投标" in html
    assert 'data-section="bidding"' in html and 'data-card="my_bids"' in html
    assert 'data-section="center"' not in html
    assert "用户管理" not in html  # no admin link for a bidder


@pytest.mark.parametrize(
    ("username", "section", "card"),
    [
        ("center.admin", "center", "admin_users"),
        ("center.staff", "center", "openings"),
        ("tenderer", "tendering", "projects"),
        ("agency", "tendering", "clarifications"),
        ("expert", "expert", "rooms"),
        ("guarantor", "guarantor", "letters"),
        ("supervisor", "supervision", "supervision"),
    ],
)
def test_each_role_has_its_home(
    app: Flask, demo: dict[str, Any], username: str, section: str, card: str
) -> None:
    client = app.test_client()
    login(client, username)
    html = text(client.get("/"))
    assert f'data-section="{section}"' in html and f'data-card="{card}"' in html


def test_login_refusals(client: FlaskClient, demo: dict[str, Any]) -> None:
    token = csrf_token(client)
    r = client.post(
        "/login", data={"username": "bidder", "password": "Wrong-pass-1", "csrf_token": token}
    )
    assert r.status_code == 401 and "用户名或口令不正确" in text(r)
    r = client.post("/login", data={"username": "ghost", "password": "x", "csrf_token": token})
    assert r.status_code == 401 and "用户名或口令不正确" in text(r)
    r = client.post("/login", data={"username": "", "password": "", "csrf_token": token})
    assert r.status_code == 400 and "请输入用户名和口令" in text(r)


def test_login_page_throttle(
    client: FlaskClient, demo: dict[str, Any], frozen_clock: Clock
) -> None:
    token = csrf_token(client)
    for _ in range(10):
        client.post(
            "/login", data={"username": "bidder", "password": "Wrong-pass-1", "csrf_token": token}
        )
    r = client.post(
        "/login", data={"username": "bidder", "password": DEMO_PASSWORD, "csrf_token": token}
    )
    assert r.status_code == 429 and r.headers["Retry-After"] == "60"
    assert "登录失败次数过多" in text(r)
    frozen_clock.move(timedelta(seconds=60))
    r = client.post(
        "/login", data={"username": "bidder", "password": DEMO_PASSWORD, "csrf_token": token}
    )
    assert r.status_code == 302


def test_disabled_account_page(client: FlaskClient, demo: dict[str, Any]) -> None:
    from bidding.accounts import services
    from bidding.core import db

    user = services.user_by_username("expert")
    assert user is not None
    services.set_user_active(None, user, False)
    db.get_session().commit()
    r = login(client, "expert")
    assert r.status_code == 403 and "该账户已停用" in text(r)


def test_login_form_needs_csrf(client: FlaskClient, demo: dict[str, Any]) -> None:
    r = client.post("/login", data={"username": "bidder", "password": DEMO_PASSWORD})
    assert r.status_code == 400 and "页面已过期" in text(r)
    r = client.post(
        "/login",
        data={"username": "bidder", "password": DEMO_PASSWORD, "csrf_token": "forged"},
    )
    assert r.status_code == 400
    # no session was opened
    assert "用户登录" in text(client.get("/"))


def test_csrf_can_be_switched_off_for_a_test(app: Flask, demo: dict[str, Any]) -> None:
    app.config["WTF_CSRF_ENABLED"] = False
    r = app.test_client().post("/login", data={"username": "bidder", "password": DEMO_PASSWORD})
    assert r.status_code == 302


def test_next_is_kept_on_this_site(client: FlaskClient, demo: dict[str, Any]) -> None:
    r = client.get("/admin/users")
    assert r.status_code == 302 and r.headers["Location"].startswith("/login?next=")
    token = csrf_token(client)
    r = client.post(
        "/login",
        data={"username": "center.admin", "password": DEMO_PASSWORD, "csrf_token": token,
              "next": "//evil.example/x"},
    )  # fmt: skip
    assert r.headers["Location"] == "/"
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    token = csrf_token(client)
    r = client.post(
        "/login",
        data={"username": "center.admin", "password": DEMO_PASSWORD, "csrf_token": token,
              "next": "/admin/users"},
    )  # fmt: skip
    assert r.headers["Location"] == "/admin/users"


def test_logout(client: FlaskClient, demo: dict[str, Any]) -> None:
    login(client, "tenderer")
    assert "您好" in text(client.get("/"))
    assert client.post("/logout").status_code == 400  # CSRF
    r = client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    assert r.status_code == 302
    assert "用户登录" in text(client.get("/"))


def test_password_change_ends_sessions(client: FlaskClient, demo: dict[str, Any]) -> None:
    from bidding.accounts import services
    from bidding.core import db

    login(client, "tenderer")
    user = services.user_by_username("tenderer")
    assert user is not None
    services.set_password(None, user, "Another-pass-9")
    db.get_session().commit()
    assert "用户登录" in text(client.get("/"))


def test_admin_pages_forbidden_to_non_admins(app: Flask, demo: dict[str, Any]) -> None:
    for username in ("bidder", "center.staff", "supervisor"):
        client = app.test_client()
        login(client, username)
        r = client.get("/admin/users")
        assert r.status_code == 403, username
        assert "您没有执行此操作的权限" in text(r) and "forbidden" in text(r)
        r = client.post("/admin/users", data={"csrf_token": csrf_token(client, "/")})
        assert r.status_code == 403


def test_admin_user_administration(client: FlaskClient, demo: dict[str, Any]) -> None:
    login(client, "center.admin")
    html = text(client.get("/admin/users"))
    assert "日喀则市公共资源交易中心" in html and 'data-user="bidder"' in html
    token = csrf_token(client, "/admin/users")
    bidder_org = str(demo["bidder"].organisation_id)
    r = client.post(
        "/admin/users",
        data={"csrf_token": token, "username": "pema", "display_name": "白玛",
              "password": "Fresh-pass-12", "organisation_id": bidder_org, "role": "bidder_rep"},
    )  # fmt: skip
    assert r.status_code == 302
    html = text(client.get("/admin/users"))
    assert "已创建用户 pema" in html and 'data-user="pema"' in html
    # refusal shown as a message
    client.post(
        "/admin/users",
        data={"csrf_token": token, "username": "pema", "display_name": "x",
              "password": "Fresh-pass-12"},
    )  # fmt: skip
    assert "该用户名已被使用" in text(client.get("/admin/users"))

    from bidding.accounts import services

    pema = services.user_by_username("pema")
    assert pema is not None
    pema_id = pema.id
    client.post(f"/admin/users/{pema_id}/roles", data={"csrf_token": token, "role": "expert"})
    pema = services.user_by_username("pema")
    assert pema is not None and {g.role.value for g in pema.grants} == {"bidder_rep", "expert"}
    grant = next(g for g in pema.grants if g.role.value == "expert")
    client.post(f"/admin/users/{pema_id}/roles/{grant.id}/revoke", data={"csrf_token": token})
    client.post(f"/admin/users/{pema_id}/active", data={"csrf_token": token, "active": "0"})
    pema = services.user_by_username("pema")
    assert pema is not None and not pema.active
    assert {g.role.value for g in pema.grants} == {"bidder_rep"}
    r = client.post(f"/admin/users/{pema_id}/roles", data={"csrf_token": token, "role": "x"})
    assert "角色无效" in text(client.get(r.headers["Location"]))


def test_token_page(client: FlaskClient, demo: dict[str, Any]) -> None:
    login(client, "guarantor")
    assert "您还没有令牌" in text(client.get("/account/tokens"))
    token = csrf_token(client, "/account/tokens")
    r = client.post(
        "/account/tokens", data={"csrf_token": token, "name": "保函系统", "scopes": "guarantor"}
    )
    assert r.status_code == 201 and r.headers["Cache-Control"] == "no-store"
    match = re.search(r'id="new-token" readonly value="(sbt_[^"]+)"', text(r))
    assert match
    secret = match.group(1)
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).get_json()
    assert me["via"] == "token" and me["token"]["name"] == "保函系统"
    listing = text(client.get("/account/tokens"))
    assert secret not in listing and secret[:12] in listing
    from bidding.accounts import services

    user = services.user_by_username("guarantor")
    assert user is not None
    token_id = services.tokens_of(user)[0].id
    r = client.post(f"/account/tokens/{token_id}/revoke", data={"csrf_token": token})
    assert r.status_code == 302
    r = client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert r.get_json()["code"] == "token_revoked"
    bad = client.post("/account/tokens", data={"csrf_token": token, "scopes": "center_admin"})
    assert bad.status_code == 302
    assert "令牌权限范围只能包含您已拥有的角色" in text(client.get("/account/tokens"))


def test_someone_elses_token_cannot_be_revoked(app: Flask, demo: dict[str, Any]) -> None:
    from bidding.accounts import services
    from bidding.core import db

    victim = services.user_by_username("bidder")
    assert victim is not None
    issued = services.issue_token(None, victim)
    db.get_session().commit()
    token_id = issued.token.id
    client = app.test_client()
    login(client, "expert")
    r = client.post(
        f"/account/tokens/{token_id}/revoke", data={"csrf_token": csrf_token(client, "/")}
    )
    assert r.status_code == 404


def test_english_home(client: FlaskClient, demo: dict[str, Any]) -> None:
    login(client, "center.admin")
    html = text(client.get("/?lang=en"))
    assert "Hello, 次仁（中心管理员）" in html and "Users and roles" in html and "Sign out" in html


def test_error_page_for_html(client: FlaskClient) -> None:
    r = client.get("/no/such/page", headers={"Accept": "text/html"})
    assert r.status_code == 404 and "无法完成请求" in text(r)

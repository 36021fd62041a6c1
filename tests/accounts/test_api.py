"""The accounts API: tokens, me, users, organisations, centers, error shapes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bidding.accounts.creditcode import make_credit_code
from bidding.core import db
from bidding.core.clock import Clock
from tests.accounts.conftest import api_token, bearer
from tests.conftest import build_app, make_settings


def test_token_and_me_for_a_bidder(client: FlaskClient, demo: dict[str, Any]) -> None:
    response = client.post(
        "/api/v1/auth/token", json={"username": "bidder", "password": "Sunbid-demo-2026"}
    )
    assert response.status_code == 201
    body = response.get_json()
    assert body["token"].startswith("sbt_") and body["roles"] == ["bidder_rep"]
    assert body["expires_at"].endswith("Z")
    me = client.get("/api/v1/me", headers=bearer(body["token"]))
    assert me.status_code == 200
    data = me.get_json()
    assert data["username"] == "bidder" and data["via"] == "token"
    assert [g["role"] for g in data["roles"]] == ["bidder_rep"]
    assert data["roles"][0]["scope_name"] == "上海浦江建设工程有限公司（演示）"
    assert data["organisation"]["kind"] == "bidder"
    assert data["center"]["region_code"] == "540200"
    assert data["token"]["prefix"] == body["token"][:12]
    # the same token on a center-staff endpoint
    refused = client.get("/api/v1/organisations", headers=bearer(body["token"]))
    assert refused.status_code == 403
    assert refused.get_json()["code"] == "forbidden"


def test_token_errors(client: FlaskClient, demo: dict[str, Any], frozen_clock: Clock) -> None:
    bad = client.post("/api/v1/auth/token", json={"username": "bidder", "password": "Nope-nope-1"})
    assert bad.status_code == 401 and bad.get_json()["code"] == "invalid_credentials"
    unknown = client.post("/api/v1/auth/token", json={"username": "ghost", "password": "x"})
    assert unknown.get_json() == bad.get_json()
    assert client.get("/api/v1/me").get_json()["code"] == "not_signed_in"
    for header in ("Bearer sbt_forged", "Basic Zm9vOmJhcg==", "Bearer "):
        r = client.get("/api/v1/me", headers={"Authorization": header})
        assert r.status_code == 401 and r.get_json()["code"] == "invalid_token", header
    token = api_token(client, "bidder")
    frozen_clock.move(timedelta(hours=8))
    r = client.get("/api/v1/me", headers=bearer(token))
    assert r.status_code == 401 and r.get_json()["code"] == "token_expired"


def test_revoke_current_token(client: FlaskClient, demo: dict[str, Any]) -> None:
    token = api_token(client, "expert")
    assert client.delete("/api/v1/auth/token", headers=bearer(token)).status_code == 204
    r = client.get("/api/v1/me", headers=bearer(token))
    assert r.status_code == 401 and r.get_json()["code"] == "token_revoked"


def test_token_scopes_over_http(client: FlaskClient, demo: dict[str, Any]) -> None:
    r = client.post(
        "/api/v1/auth/token",
        json={"username": "bidder", "password": "Sunbid-demo-2026", "scopes": ["center_admin"]},
    )
    assert r.status_code == 422 and r.get_json()["code"] == "invalid_scope"
    r = client.post(
        "/api/v1/auth/token",
        json={"username": "bidder", "password": "Sunbid-demo-2026", "scopes": ["pharaoh"]},
    )
    assert r.status_code == 422 and r.get_json()["code"] == "validation_error"


def test_login_throttle_over_http(
    client: FlaskClient, demo: dict[str, Any], frozen_clock: Clock
) -> None:
    for _ in range(9):
        r = client.post("/api/v1/auth/token", json={"username": "bidder", "password": "Bad-pass-1"})
        assert r.status_code == 401
    # the tenth wrong password within the minute is already answered with 429
    r = client.post("/api/v1/auth/token", json={"username": "bidder", "password": "Bad-pass-1"})
    assert r.status_code == 429 and r.get_json()["code"] == "too_many_attempts"
    r = client.post(
        "/api/v1/auth/token", json={"username": "bidder", "password": "Sunbid-demo-2026"}
    )
    assert r.status_code == 429
    assert r.get_json()["code"] == "too_many_attempts"
    assert r.headers["Retry-After"] == "60" and r.get_json()["details"]["retry_after"] == 60
    frozen_clock.move(timedelta(seconds=59))
    r = client.post(
        "/api/v1/auth/token", json={"username": "bidder", "password": "Sunbid-demo-2026"}
    )
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    frozen_clock.move(timedelta(seconds=1))
    r = client.post(
        "/api/v1/auth/token", json={"username": "bidder", "password": "Sunbid-demo-2026"}
    )
    assert r.status_code == 201


def test_malformed_json(client: FlaskClient) -> None:
    r = client.post(
        "/api/v1/auth/token", data="{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400
    assert r.get_json()["code"] == "malformed_json"


def test_oversized_body(tmp_path: Path) -> None:
    app = build_app(make_settings(tmp_path / "big", max_body_mb=1))
    try:
        with app.app_context():
            r = app.test_client().post(
                "/api/v1/auth/token",
                data=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                headers={"Content-Type": "application/json"},
            )
            assert r.status_code == 413
            assert r.get_json()["code"] == "payload_too_large"
    finally:
        db.dispose_engine()


def test_user_administration(client: FlaskClient, demo: dict[str, Any]) -> None:
    bidder_org_id = str(demo["bidder"].organisation_id)
    admin = bearer(api_token(client, "center.admin"))
    listing = client.get("/api/v1/users?limit=3", headers=admin).get_json()
    assert len(listing["items"]) == 3 and listing["next_cursor"]
    rest = client.get(f"/api/v1/users?cursor={listing['next_cursor']}", headers=admin).get_json()
    names = [u["username"] for u in listing["items"] + rest["items"]]
    assert names == sorted(names) and len(names) == 8 and rest["next_cursor"] is None
    created = client.post(
        "/api/v1/users",
        headers=admin,
        json={
            "username": "new.bidder",
            "display_name": "新投标人",
            "password": "Fresh-pass-12",
            "organisation_id": bidder_org_id,
            "roles": [{"role": "bidder_rep", "organisation_id": bidder_org_id}],
        },
    )
    assert created.status_code == 201, created.get_json()
    user = created.get_json()
    assert [g["role"] for g in user["roles"]] == ["bidder_rep"]
    uid = user["id"]
    dup = client.post(
        "/api/v1/users",
        headers=admin,
        json={"username": "new.bidder", "display_name": "x", "password": "Fresh-pass-12"},
    )
    assert dup.status_code == 409 and dup.get_json()["code"] == "duplicate_username"
    weak = client.post(
        "/api/v1/users",
        headers=admin,
        json={"username": "weakling", "display_name": "x", "password": "aaaaaaaaaaaa"},
    )
    assert weak.status_code == 422 and weak.get_json()["code"] == "weak_password"
    # grant, patch, revoke
    grant = client.post(f"/api/v1/users/{uid}/roles", headers=admin, json={"role": "expert"})
    assert grant.status_code == 201 and grant.get_json()["role"] == "expert"
    wrong = client.post(f"/api/v1/users/{uid}/roles", headers=admin, json={"role": "tenderer_rep"})
    assert wrong.status_code == 422 and wrong.get_json()["code"] == "invalid_role"
    patched = client.patch(
        f"/api/v1/users/{uid}", headers=admin, json={"display_name": "新名字", "active": False}
    )
    assert patched.status_code == 200 and patched.get_json()["active"] is False
    revoke = client.delete(f"/api/v1/users/{uid}/roles/{grant.get_json()['id']}", headers=admin)
    assert revoke.status_code == 204
    again = client.delete(f"/api/v1/users/{uid}/roles/{grant.get_json()['id']}", headers=admin)
    assert again.status_code == 404
    # the last admin keeps the role
    admin_id = str(demo["center.admin"].id)
    last = client.patch(f"/api/v1/users/{admin_id}", headers=admin, json={"active": False})
    assert last.status_code == 409 and last.get_json()["code"] == "last_center_admin"


def test_user_administration_is_for_center_admins(
    client: FlaskClient, demo: dict[str, Any]
) -> None:
    staff = bearer(api_token(client, "center.staff"))
    assert client.get("/api/v1/users", headers=staff).status_code == 403
    r = client.post(
        "/api/v1/users",
        headers=staff,
        json={"username": "sneaky", "display_name": "x", "password": "Fresh-pass-12"},
    )
    assert r.status_code == 403 and r.get_json()["code"] == "forbidden"
    uid = demo["bidder"].id
    assert client.patch(f"/api/v1/users/{uid}", headers=staff, json={}).status_code == 403


def test_admin_of_another_center_sees_nothing(client: FlaskClient, demo: dict[str, Any]) -> None:
    from bidding.accounts import services
    from bidding.core.roles import Role

    s = db.get_session()
    shanghai = services.center_by_region("310000")
    other = services.create_user(
        None,
        username="sh.admin",
        display_name="沪管理员",
        password="Fresh-pass-12",
        center=shanghai,
    )
    services.grant_role(None, other, Role.CENTER_ADMIN, center=shanghai)
    s.commit()
    token = bearer(api_token(client, "sh.admin", "Fresh-pass-12"))
    names = [u["username"] for u in client.get("/api/v1/users", headers=token).get_json()["items"]]
    assert names == ["sh.admin"]
    r = client.patch(f"/api/v1/users/{demo['bidder'].id}", headers=token, json={"active": False})
    assert r.status_code == 404


def test_organisations(client: FlaskClient, demo: dict[str, Any]) -> None:
    staff = bearer(api_token(client, "center.staff"))
    listing = client.get("/api/v1/organisations?kind=bidder", headers=staff).get_json()
    assert [o["kind"] for o in listing["items"]] == ["bidder"]
    code = make_credit_code("370000", "MA3C0E09")
    r = client.post(
        "/api/v1/organisations",
        headers=staff,
        json={"name": "山东某建设集团", "kind": "bidder", "credit_code": code},
    )
    assert r.status_code == 201 and r.get_json()["credit_code"] == code
    r = client.post(
        "/api/v1/organisations",
        headers=staff,
        json={"name": "重复", "kind": "bidder", "credit_code": code},
    )
    assert r.status_code == 409 and r.get_json()["code"] == "duplicate_organisation"
    r = client.post(
        "/api/v1/organisations",
        headers=staff,
        json={"name": "假冒", "kind": "bidder", "credit_code": code[:-1] + "0"},
    )
    assert r.status_code == 422 and r.get_json()["code"] == "invalid_credit_code"
    supervisor = bearer(api_token(client, "supervisor"))
    assert client.get("/api/v1/organisations", headers=supervisor).status_code == 200
    r = client.post(
        "/api/v1/organisations",
        headers=supervisor,
        json={"name": "x", "kind": "bidder", "credit_code": code},
    )
    assert r.status_code == 403


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=abc"])
def test_pagination_limits(client: FlaskClient, demo: dict[str, Any], query: str) -> None:
    staff = bearer(api_token(client, "center.staff"))
    r = client.get(f"/api/v1/organisations?{query}", headers=staff)
    assert r.status_code == 422 and r.get_json()["code"] == "validation_error"


def test_invalid_cursor(client: FlaskClient, demo: dict[str, Any]) -> None:
    staff = bearer(api_token(client, "center.staff"))
    r = client.get("/api/v1/organisations?cursor=garbage!", headers=staff)
    assert r.status_code == 400 and r.get_json()["code"] == "invalid_cursor"


def test_centers_with_partners(client: FlaskClient, demo: dict[str, Any]) -> None:
    token = bearer(api_token(client, "bidder"))
    items = client.get("/api/v1/centers", headers=token).get_json()["items"]
    by_region = {c["region_code"]: c for c in items}
    assert set(by_region) == {"540200", "310000", "370000", "230000", "220000"}
    partners = by_region["540200"]["partners"]
    assert sorted(p["center"]["region_code"] for p in partners) == [
        "220000",
        "230000",
        "310000",
        "370000",
    ]
    assert all(p["scope"] == "remote_evaluation" and p["active"] for p in partners)
    one = client.get(f"/api/v1/centers/{by_region['310000']['id']}", headers=token).get_json()
    assert [p["center"]["region_code"] for p in one["partners"]] == ["540200"]
    assert client.get("/api/v1/centers").status_code == 401


def test_openapi_documents_bearer_auth(client: FlaskClient, app: Flask) -> None:
    spec = client.get("/api/openapi.json").get_json()
    assert spec["components"]["securitySchemes"]["BearerAuth"]["scheme"] == "bearer"
    for path in ("/api/v1/auth/token", "/api/v1/me", "/api/v1/users", "/api/v1/organisations"):
        assert path in spec["paths"]
    assert spec["paths"]["/api/v1/me"]["get"]["security"] == [{"BearerAuth": []}]


def test_session_cookie_api_calls_need_csrf(app: Flask, demo: dict[str, Any]) -> None:
    from tests.accounts.conftest import csrf_token, login

    client = app.test_client()
    assert login(client, "center.admin").status_code == 302
    assert client.get("/api/v1/me").get_json()["via"] == "session"
    r = client.post(f"/api/v1/users/{demo['bidder'].id}/roles", json={"role": "expert"})
    assert r.status_code == 400 and r.get_json()["code"] == "csrf_failed"
    r = client.post(
        f"/api/v1/users/{demo['bidder'].id}/roles",
        json={"role": "expert"},
        headers={"X-CSRFToken": csrf_token(client, "/admin/users")},
    )
    assert r.status_code == 201

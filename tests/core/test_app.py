from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from tests.conftest import build_app, make_settings


def test_healthz_reports_database_storage_and_broker(client: FlaskClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    body = r.get_json()
    assert body["status"] == "ok"
    assert {"database", "storage", "broker"} <= body["checks"].keys()
    assert all(check["ok"] for check in body["checks"].values())


def test_healthz_degraded_when_storage_is_down(tmp_path: Path) -> None:
    from bidding.core import db

    # a closed port: the S3 backend cannot be reached
    app = build_app(
        make_settings(tmp_path / "i", storage_url="s3://k:secret1234@127.0.0.1:9/bucket")
    )
    try:
        with app.app_context():
            r = app.test_client().get("/healthz")
            assert r.status_code == 503
            body = r.get_json()
            assert body["checks"]["storage"]["ok"] is False
            assert body["checks"]["database"]["ok"] is True
    finally:
        db.dispose_engine()


@pytest.mark.filterwarnings("error::UserWarning")  # "<Schema> has already been added to the spec"
def test_openapi_document_is_openapi_3_and_complete(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    renamed = [n for n in spec["components"]["schemas"] if re.fullmatch(r".*[A-Za-z]\d+", n)]
    assert not renamed, f"schemas registered twice or clashing by name: {renamed}"
    assert spec["paths"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            assert operation.get("responses"), f"{method} {path} declares no responses"


def test_api_docs_page_uses_no_remote_assets(client: FlaskClient) -> None:
    html = client.get("/api/docs").get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and all(a.startswith("/static/") for a in assets)
    for asset in assets:
        assert client.get(asset).status_code in {200, 404}  # 404 only without `make assets`


def test_errors_are_json_with_stable_codes(client: FlaskClient) -> None:
    r = client.get("/api/v1/no-such-thing")
    assert r.status_code == 404 and r.get_json()["code"] == "not_found"
    r = client.delete("/healthz")
    assert r.status_code == 405 and r.get_json()["code"] == "method_not_allowed"


def test_security_headers(client: FlaskClient) -> None:
    r = client.get("/login")
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]


def test_login_page_is_chinese_by_default(client: FlaskClient) -> None:
    html = client.get("/").get_data(as_text=True)
    assert "登录" in html and 'lang="zh' in html
    english = client.get("/?lang=en").get_data(as_text=True)
    assert "Sign in" in english or "Log in" in english

"""Fixtures for the accounts tests: cheap password hashing, the demo data, sign-in helpers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bidding.accounts.demo import DEMO_PASSWORD, seed_demo
from bidding.accounts.passwords import use_default_hashing, use_fast_hashing
from bidding.core import db


@pytest.fixture(autouse=True)
def fast_hashing() -> Iterator[None]:
    use_fast_hashing()
    yield
    use_default_hashing()


@pytest.fixture
def demo(app: Flask) -> dict[str, Any]:
    """The demo data set, committed; returns ``{username: User}``."""
    from bidding.accounts.models import User

    s = db.get_session()
    seed_demo(s)
    s.commit()
    return {u.username: u for u in s.query(User).all()}


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    html = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on " + path
    return match.group(1)


def login(client: FlaskClient, username: str, password: str = DEMO_PASSWORD) -> Any:
    token = csrf_token(client)
    return client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )


def api_token(
    client: FlaskClient, username: str, password: str = DEMO_PASSWORD, **extra: Any
) -> str:
    response = client.post(
        "/api/v1/auth/token", json={"username": username, "password": password, **extra}
    )
    assert response.status_code == 201, response.get_json()
    return str(response.get_json()["token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}

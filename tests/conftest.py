"""Shared fixtures: an app on a throw-away SQLite database, a client, a frozen clock, and
(from ``tests/fixtures``) the real services integration tests need."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bidding.config import Settings
from bidding.core import db
from bidding.core.clock import Clock, clock
from tests.fixtures.s3 import *  # noqa: F403
from tests.fixtures.services import *  # noqa: F403

TEST_SECRET = "test-secret-key-0123456789abcdef"


def make_settings(instance: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "instance_dir": str(instance),
        "secret_key": TEST_SECRET,
        "embedded_clock": False,
        "password_hashing": "fast",  # argon2 at full cost is ~175 ms a hash
    }
    values.update(overrides)
    return Settings.from_env(env={}, **values)


def build_app(settings: Settings) -> Flask:
    from bidding.app import create_app

    app = create_app(settings)
    app.config["TESTING"] = True
    db.Base.metadata.create_all(db.get_engine())
    return app


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "instance")


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    app = build_app(settings)
    with app.app_context():
        yield app
    db.dispose_engine()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def frozen_clock() -> Iterator[Clock]:
    clock.freeze(datetime(2026, 11, 26, 8, 0, tzinfo=UTC))
    try:
        yield clock
    finally:
        clock.unfreeze()


#: Fixtures that mean "this test talks to a real service".
SERVICE_FIXTURES = {
    "postgres_url": "PostgreSQL",
    "postgres_admin_url": "PostgreSQL",
    "redis_url": "Redis",
    "s3_server": "S3 server",
    "s3_storage_url": "S3 server",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ())) & SERVICE_FIXTURES.keys()
        if used and "integration" not in item.keywords:
            item.add_marker(pytest.mark.integration)
        for name in used:
            item.user_properties.append(("service", SERVICE_FIXTURES[name]))
        if "worker" in getattr(item, "fixturenames", ()) or "celery" in item.nodeid:
            item.user_properties.append(("service", "Celery worker"))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say which real services the run exercised, so CI output shows nothing was skipped."""
    tally: dict[str, dict[str, int]] = {}
    for outcome in ("passed", "failed", "skipped", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            when = getattr(report, "when", "call")
            if outcome == "passed" and when != "call":
                continue
            services = {v for k, v in getattr(report, "user_properties", ()) if k == "service"}
            if "browser" in getattr(report, "keywords", {}):
                services.add("Chromium")
            for service in services:
                tally.setdefault(service, {}).setdefault(outcome, 0)
                tally[service][outcome] += 1
    if not tally:
        return
    terminalreporter.section("real services exercised")
    for service in sorted(tally):
        counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(tally[service].items()))
        terminalreporter.write_line(f"{service}: {counts}")

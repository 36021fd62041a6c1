"""``sunbid demo``: the seeded tender a visitor walks through (bidding/demo.py), run twice."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from flask import Flask
from sqlalchemy import func, select

from bidding.accounts.demo import DEMO_PASSWORD
from bidding.accounts.models import Organisation, User
from bidding.app import settings_of
from bidding.bids.package import parse_price_sheet
from bidding.bids.trust import trust_store
from bidding.core import db
from bidding.core.audit import verify_log
from bidding.core.audit.models import AuditEvent
from bidding.core.clock import Clock, now
from bidding.demo import CUSTODIANS, PROJECT_NAME, PUBLISHED_SECTION, REVIEW_SECTION, seed
from bidding.projects.models import (
    FindingStatus,
    Project,
    Registration,
    ReviewFinding,
    Section,
    SectionState,
    TenderDocument,
)
from bidding.projects.rules.base import local_date
from bidding.projects.rules.timeline import Timeline, validate_timeline
from crypto.pki import certificate_org_code, load_x25519_private_key_pem, verify_chain
from crypto.threshold import EncryptedShare, OpeningKeyCeremony, combine_shares, decrypt_share
from tests.conftest import build_app, make_settings


def _counts() -> dict[str, int]:
    s = db.get_session()
    return {
        model.__name__: s.scalar(select(func.count()).select_from(model)) or 0
        for model in (
            Project,
            Section,
            TenderDocument,
            ReviewFinding,
            Registration,
            AuditEvent,
            User,
            Organisation,
        )
    }


def _seed_twice(app: Flask) -> dict[str, int]:
    settings = settings_of(app)
    with db.session_scope() as s:
        seed(s, settings)
    first = _counts()
    files = {p: p.read_bytes() for p in (settings.instance_dir / "demo").rglob("*") if p.is_file()}
    with db.session_scope() as s:
        seed(s, settings)
    assert _counts() == first, "a second run changed the database"
    again = {p: p.read_bytes() for p in (settings.instance_dir / "demo").rglob("*") if p.is_file()}
    assert again == files, "a second run changed the demo files"
    return first


@pytest.fixture
def seeded(app: Flask, frozen_clock: Clock) -> Iterator[Flask]:
    _seed_twice(app)
    yield app


def _sections() -> tuple[Section, Section]:
    s = db.get_session()
    published = s.scalars(select(Section).where(Section.name == PUBLISHED_SECTION)).one()
    review = s.scalars(select(Section).where(Section.name == REVIEW_SECTION)).one()
    return published, review


def test_published_section_is_on_the_public_pages(seeded: Flask) -> None:
    published, _review = _sections()
    assert published.state is SectionState.PUBLISHED
    assert published.project.name == PROJECT_NAME
    client = seeded.test_client()

    api = client.get("/api/v1/announcements")
    assert api.status_code == 200
    items = api.get_json()["items"]
    assert [item["id"] for item in items] == [str(published.id)]
    assert items[0]["opening_key_fingerprint"] == published.opening_key_fingerprint

    page = client.get("/announcements")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert PUBLISHED_SECTION in html
    assert REVIEW_SECTION not in html  # a section under review is not public

    detail = client.get(f"/projects/{published.project_id}/sections/{published.id}")
    assert detail.status_code == 200
    assert published.code in detail.get_data(as_text=True)


def test_timeline_is_lawful_with_the_deadline_about_25_days_ahead(seeded: Flask) -> None:
    published, _ = _sections()
    assert published.bid_deadline is not None
    days = (local_date(published.bid_deadline) - local_date(now())).days
    assert 25 <= days <= 27 and local_date(published.bid_deadline).weekday() < 5
    assert published.documents_issued_at and published.sale_start and published.sale_end
    validate_timeline(
        published.project.kind,
        Timeline(
            documents_issued_at=published.documents_issued_at,
            sale_start=published.sale_start,
            sale_end=published.sale_end,
            bid_deadline=published.bid_deadline,
            objection_cutoff=published.objection_cutoff,
        ),
    )
    assert published.findings == [] and published.review_round == 1
    assert published.bid_deadline - now() > timedelta(days=24)


def test_review_section_has_its_one_finding(seeded: Flask) -> None:
    _, review = _sections()
    assert review.state is SectionState.UNDER_REVIEW
    findings = review.findings
    assert [(f.rule_id, f.status) for f in findings] == [("R02", FindingStatus.OPEN)]
    assert "本市注册" in findings[0].clause
    seeded.config["WTF_CSRF_ENABLED"] = False
    client = seeded.test_client()
    r = client.post("/login", data={"username": "center.staff", "password": DEMO_PASSWORD})
    assert r.status_code == 302, r.text
    html = client.get(f"/projects/{review.project_id}/sections/{review.id}").get_data(as_text=True)
    assert "本市注册" in html


def test_custodian_key_files_open_the_ceremony(seeded: Flask) -> None:
    published, _ = _sections()
    folder = settings_of(seeded).instance_dir / "demo" / "custodians"
    ceremony = OpeningKeyCeremony.from_dict(published.opening_ceremony or {})
    by_user = {c.user.username: c for c in published.custodians}
    assert set(by_user) == {name for name, _ in CUSTODIANS}
    shares = []
    for username, custodian in by_user.items():
        path = folder / f"{username}.key"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        key = load_x25519_private_key_pem(path.read_bytes())
        share = EncryptedShare.from_dict(custodian.encrypted_share or {})
        shares.append(decrypt_share(share, key, ceremony))
    opened = combine_shares(shares[:2], ceremony)  # any 2 of the 3
    assert opened.public_key().public_bytes_raw().hex() == published.opening_public_key


def test_bidder_is_registered_with_a_demo_ca_certificate(seeded: Flask) -> None:
    published, _ = _sections()
    bidder = db.get_session().scalars(select(User).where(User.username == "bidder")).one()
    org = bidder.organisation
    assert org is not None
    assert [r.bidder_id for r in published.registrations] == [org.id]
    folder: Path = settings_of(seeded).instance_dir / "demo" / "bidder"
    assert stat.S_IMODE((folder / "bidder.key").stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((folder / "bidder.pem").read_bytes())
    assert certificate_org_code(cert) == org.credit_code
    store = trust_store()
    verify_chain(cert, [], store.roots, at=now(), crls=store.crls)
    parse_price_sheet(
        json.loads((folder / "price_sheet.json").read_text("utf-8")),
        section_id=str(published.id),
        bidder_credit_code=org.credit_code,
    )
    assert any((folder / "bid").iterdir())


def test_audit_log_verifies(seeded: Flask) -> None:
    report = verify_log(db.get_session())
    assert report.ok, report


def test_cli_demo_prints_where_the_keys_are(
    app: Flask, monkeypatch: pytest.MonkeyPatch, frozen_clock: Clock
) -> None:
    from bidding import cli

    monkeypatch.setattr(cli, "_app", lambda settings=None: app)
    result = CliRunner().invoke(cli.main, ["demo"])
    assert result.exit_code == 0, result.output
    instance = settings_of(app).instance_dir
    assert "center.staff" in result.output and DEMO_PASSWORD in result.output
    assert str(instance / "demo" / "custodians" / "supervisor.key") in result.output
    assert str(instance / "demo" / "bidder" / "bidder.pem") in result.output
    assert PROJECT_NAME in result.output


def test_demo_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    app = build_app(make_settings(tmp_path / "instance", database_url=postgres_url))
    try:
        with app.app_context():
            counts = _seed_twice(app)
            assert counts["Section"] == 2 and counts["Registration"] == 1
            assert verify_log(db.get_session()).ok
    finally:
        db.dispose_engine()

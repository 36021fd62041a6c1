"""The projects pages render for the public, the agency, the center and bidders, and their
forms call the services (CSRF disabled here: the accounts tests cover CSRF)."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bidding.accounts.passwords import hash_password, use_default_hashing, use_fast_hashing
from bidding.core import db
from bidding.projects.models import SectionState
from tests.projects.factories import (
    CLEAN_TEXT,
    World,
    draft_section,
    published_section,
    submit_keys,
    upload_text,
)

PASSWORD = "Sunbid-test-口令-2026"


def _login(client: FlaskClient, world: World, actor: object) -> None:
    from bidding.accounts.models import User

    user = db.get_session().get(User, actor.id)  # type: ignore[attr-defined]
    assert user is not None
    user.password_hash = hash_password(PASSWORD)
    db.get_session().commit()
    client.post("/logout")
    r = client.post("/login", data={"username": user.username, "password": PASSWORD})
    assert r.status_code == 302, r.text
    db.session.remove()


@pytest.fixture
def pages(app: Flask, client: FlaskClient, world: World) -> Iterator[FlaskClient]:
    app.config["WTF_CSRF_ENABLED"] = False
    use_fast_hashing()
    yield client
    use_default_hashing()


def test_public_announcements_and_section(pages: FlaskClient, world: World) -> None:
    section = published_section(world)
    path = f"/projects/{section.project_id}/sections/{section.id}"
    db.get_session().commit()
    r = pages.get("/announcements")
    assert r.status_code == 200 and section.code in r.text and "招标公告" in r.text
    r = pages.get(path)
    assert r.status_code == 200 and "投标截止（开标）时间" in r.text
    assert "公平竞争审查意见" not in r.text  # not for the public
    assert pages.get(path + "/audit").status_code in (302, 401)


def test_draft_page_hidden_from_public(pages: FlaskClient, world: World) -> None:
    section = draft_section(world)
    db.get_session().commit()
    assert pages.get(f"/projects/{section.project_id}/sections/{section.id}").status_code == 404


def test_agency_and_center_flow_through_pages(pages: FlaskClient, world: World) -> None:
    section = draft_section(world)
    submit_keys(world, section)
    upload_text(world, section, CLEAN_TEXT + "投标人须在本市注册的企业方可参加投标。\n")
    db.get_session().commit()
    base = f"/projects/{section.project_id}/sections/{section.id}"
    _login(pages, world, world.agent)
    r = pages.get(base)
    assert r.status_code == 200 and "提交公平竞争审查" in r.text
    r = pages.post(base + "/submit", follow_redirects=True)
    assert "已提交公平竞争审查" in r.text
    r = pages.post(base + "/prepare", follow_redirects=True)
    assert "审查意见未处理" in r.text  # refusal shown as a message
    _login(pages, world, world.staff)
    r = pages.get(base)
    assert "放行" in r.text and "data-finding" in r.text
    finding_id = db.get_session().get(type(section), section.id).open_findings[0].id
    r = pages.post(
        base + f"/findings/{finding_id}/override",
        data={"reason": "经核实符合项目需要。"},
        follow_redirects=True,
    )
    assert "已放行该审查意见" in r.text
    r = pages.get("/sections")
    assert r.status_code == 200 and section.code in r.text
    r = pages.get(base + "/audit")
    assert r.status_code == 200 and "review_finding.overridden" in r.text
    _login(pages, world, world.agent)
    pages.post(base + "/prepare", follow_redirects=True)
    fingerprint = db.get_session().get(type(section), section.id).opening_key_fingerprint
    r = pages.post(base + "/publish", data={"fingerprint": fingerprint}, follow_redirects=True)
    assert "招标公告已发布" in r.text
    db.session.remove()
    assert db.get_session().get(type(section), section.id).state is SectionState.PUBLISHED
    r = pages.post(
        base + "/clarify", data={"text": "参数更正。", "affects_bids": "1"}, follow_redirects=True
    )
    assert "澄清已发布" in r.text
    _login(pages, world, world.bidder_reps[0])
    r = pages.post(base + "/register", follow_redirects=True)
    assert "报名成功" in r.text
    r = pages.post(base + "/register", follow_redirects=True)
    assert "已报名" in r.text


def test_new_project_form(pages: FlaskClient, world: World) -> None:
    db.get_session().commit()
    _login(pages, world, world.agent)
    r = pages.get("/projects/new")
    assert r.status_code == 200 and "项目进场登记" in r.text
    r = pages.post(
        "/projects/new",
        data={
            "name": "某县道路改造工程",
            "kind": "tendering",
            "subject": "works",
            "tenderer_id": str(world.tenderer.id),
            "agency_id": str(world.agency.id),
            "region_code": "540200",
            "amount": "12000000",
        },
        follow_redirects=True,
    )
    assert r.status_code == 200 and "540200-2026-GZ-" in r.text
    r = pages.post("/projects/new", data={"name": "x", "tenderer_id": "nope"})
    assert r.status_code == 422


def test_upload_through_page(pages: FlaskClient, world: World) -> None:
    section = draft_section(world)
    db.get_session().commit()
    _login(pages, world, world.agent)
    base = f"/projects/{section.project_id}/sections/{section.id}"
    r = pages.post(
        base + "/documents",
        data={
            "file": (io.BytesIO(CLEAN_TEXT.encode()), "招标文件.txt", "text/plain"),
            "kind": "tender_documents",
        },
        content_type="multipart/form-data",
        follow_redirects=True,
    )
    assert "文件已上传" in r.text and "招标文件.txt" in r.text

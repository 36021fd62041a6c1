"""The notifications API and the 消息中心 page over HTTP: own messages only (404 for
another user's), unread filter and pagination, Chinese and English text, the navbar badge."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from bidding.accounts.passwords import hash_password, use_default_hashing, use_fast_hashing
from bidding.core import db
from bidding.core.clock import Clock, clock
from bidding.projects import services as projects
from bidding.projects.models import Section
from tests.notifications.conftest import Api
from tests.opening.factories import commit
from tests.projects.factories import World, published_section

PASSWORD = "Sunbid-test-口令-2026"


def _clarified(world: World, *, cancel: bool = False) -> Section:
    """A published section, bidders 0 and 1 registered, one clarification (and a cancel)."""
    section = published_section(world)
    for i in (0, 1):
        projects.register_bidder(world.bidder_reps[i], section)
    projects.issue_clarification(world.agent, section, text="第三章技术参数第5项更正。")
    if cancel:
        clock.move(timedelta(minutes=5))  # newest first: the cancel comes later
        projects.cancel_section(world.agent, section, "项目资金未落实，终止本次招标。")
    commit()
    fresh = db.get_session().get(Section, section.id)
    assert fresh is not None
    return fresh


def _items(api: Api, actor: Any, query: str = "") -> dict[str, Any]:
    r = api.call("GET", f"/api/v1/notifications{query}", actor)
    assert r.status_code == 200, r.text
    return dict(r.get_json())


def test_list_in_chinese_and_english(world: World, api: Api, frozen_clock: Clock) -> None:
    section = _clarified(world)
    body = _items(api, world.bidder_reps[0])
    assert body["unread_count"] == 1 and body["next_cursor"] is None
    (item,) = body["items"]
    assert item["kind"] == "clarification_issued" and item["unread"] is True
    assert item["title"] == "澄清/修改通知"
    assert section.name in item["body"] and section.code in item["body"]
    assert "投标截止时间不变" in item["body"]
    assert item["link"] == f"/projects/{section.project_id}/sections/{section.id}"
    assert item["section_id"] == str(section.id)
    assert item["project_id"] == str(section.project_id)
    assert item["created_at"].endswith("Z") and item["read_at"] is None

    (english,) = _items(api, world.bidder_reps[0], "?lang=en")["items"]
    assert english["id"] == item["id"]
    assert english["title"] == "Clarification / amendment"
    assert english["body"].startswith("The tenderer has issued a clarification or amendment")
    assert "The bid deadline is unchanged" in english["body"]
    assert "澄清" not in english["body"]


def test_read_unread_per_user_and_foreign_ids(world: World, api: Api, frozen_clock: Clock) -> None:
    _clarified(world, cancel=True)
    a, b, outsider = world.bidder_reps[0], world.bidder_reps[1], world.bidder_reps[2]
    mine = _items(api, a)["items"]
    theirs = _items(api, b)["items"]
    assert [i["kind"] for i in mine] == ["section_cancelled", "clarification_issued"]
    assert _items(api, outsider) == {"items": [], "next_cursor": None, "unread_count": 0}

    # another user's id: 404 for reading it, and it stays unread
    r = api.call("POST", f"/api/v1/notifications/{theirs[0]['id']}/read", a)
    assert r.status_code == 404 and r.get_json()["code"] == "not_found"
    r = api.call("POST", f"/api/v1/notifications/{theirs[0]['id']}/read", outsider)
    assert r.status_code == 404
    assert _items(api, b)["unread_count"] == 2

    r = api.call("POST", f"/api/v1/notifications/{mine[1]['id']}/read", a)
    assert r.status_code == 200 and r.get_json()["unread"] is False
    assert r.get_json()["read_at"].endswith("Z")
    assert [i["id"] for i in _items(api, a, "?unread=true")["items"]] == [mine[0]["id"]]
    assert [i["id"] for i in _items(api, a, "?unread=false")["items"]] == [mine[1]["id"]]
    assert _items(api, b)["unread_count"] == 2  # b's copies are b's own

    page = _items(api, a, "?limit=1")
    assert [i["id"] for i in page["items"]] == [mine[0]["id"]] and page["next_cursor"]
    rest = _items(api, a, f"?limit=1&cursor={page['next_cursor']}")
    assert [i["id"] for i in rest["items"]] == [mine[1]["id"]] and rest["next_cursor"] is None

    r = api.call("POST", "/api/v1/notifications/read-all", b)
    assert r.status_code == 200 and r.get_json() == {"marked": 2, "unread_count": 0}
    assert _items(api, a)["unread_count"] == 1  # a's unread one is untouched
    r = api.call("POST", "/api/v1/notifications/read-all", b)
    assert r.get_json() == {"marked": 0, "unread_count": 0}


def test_api_needs_a_signed_in_user(world: World, api: Api, frozen_clock: Clock) -> None:
    commit()
    r = api.call("GET", "/api/v1/notifications")
    assert r.status_code == 401
    r = api.call("POST", "/api/v1/notifications/read-all")
    assert r.status_code in (400, 401)  # no session: CSRF or authentication refuses it
    r = api.call("GET", "/api/v1/notifications?limit=0", world.bidder_reps[0])
    assert r.status_code == 422


def test_openapi_documents_the_notifications(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").get_json()
    paths = spec["paths"]
    assert "get" in paths["/api/v1/notifications"]
    assert "post" in paths["/api/v1/notifications/{notification_id}/read"]
    assert "post" in paths["/api/v1/notifications/read-all"]


def _login(client: FlaskClient, actor: Any) -> None:
    from bidding.accounts.models import User

    user = db.get_session().get(User, actor.id)
    assert user is not None
    user.password_hash = hash_password(PASSWORD)
    db.get_session().commit()
    client.post("/logout")
    r = client.post("/login", data={"username": user.username, "password": PASSWORD})
    assert r.status_code == 302, r.text
    db.session.remove()


def test_message_center_page(
    app: Flask, client: FlaskClient, world: World, frozen_clock: Clock
) -> None:
    app.config["WTF_CSRF_ENABLED"] = False
    use_fast_hashing()
    try:
        section = _clarified(world, cancel=True)
        assert client.get("/notifications").status_code in (302, 401)
        _login(client, world.bidder_reps[0])

        home = client.get("/").get_data(as_text=True)
        assert 'href="/notifications"' in home and 'class="badge rounded-pill' in home
        assert ">2</span>" in home  # the navbar badge counts the unread

        r = client.get("/notifications")
        page = r.get_data(as_text=True)
        assert r.status_code == 200
        assert "澄清/修改通知" in page and "终止招标通知" in page
        assert "项目资金未落实，终止本次招标。" in page
        assert page.count('class="badge bg-danger me-1">未读') == 2
        assert 'name="viewport"' in page  # phone width: the base layout's viewport

        english = client.get("/notifications?lang=en").get_data(as_text=True)
        assert "Tender cancelled" in english and "Mark all as read" in english

        ids = [
            n["id"] for n in Api(client).call("GET", "/api/v1/notifications").get_json()["items"]
        ]
        r = client.post(f"/notifications/{ids[1]}/read", data={"go": "1"})
        assert r.status_code == 302
        assert r.headers["Location"].endswith(
            f"/projects/{section.project_id}/sections/{section.id}"
        )
        page = client.get("/notifications?unread=1").get_data(as_text=True)
        assert "终止招标通知" in page and "澄清/修改通知" not in page
        assert ">1</span>" in page

        r = client.post("/notifications/read-all")
        assert r.status_code == 302
        page = client.get("/notifications").get_data(as_text=True)
        assert "未读</span>" not in page and 'class="badge rounded-pill' not in page

        # another user's message: 404 page, nothing changes
        _login(client, world.bidder_reps[2])
        assert client.post(f"/notifications/{ids[0]}/read").status_code == 404
        assert "暂无消息。" in client.get("/notifications").get_data(as_text=True)
    finally:
        use_default_hashing()

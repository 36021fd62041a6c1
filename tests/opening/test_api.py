"""The opening API and pages over HTTP (bearer tokens, eager tasks, local storage)."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from bidding.accounts import services as accounts
from bidding.accounts.models import User
from bidding.core import db
from bidding.core.clock import Clock
from bidding.core.roles import Actor
from bidding.core.signing_key import platform_key
from bidding.opening.models import ShareRelease, ShareStatus
from crypto.signing import SignedDocument
from tests.opening.factories import commit, opening_with_bids, share_for
from tests.projects.factories import World


class Api:
    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self._tokens: dict[object, str] = {}

    def call(self, method: str, path: str, actor: Actor | None = None, **kw: Any) -> Any:
        headers = dict(kw.pop("headers", {}))
        if actor is not None:
            if actor.id not in self._tokens:
                user = db.get_session().get(User, actor.id)
                issued = accounts.issue_token(None, user, ttl=86400)
                commit()
                self._tokens[actor.id] = issued.secret
            headers["Authorization"] = f"Bearer {self._tokens[actor.id]}"
        response = self.client.open(path, method=method, headers=headers, **kw)
        db.session.remove()
        return response


@pytest.fixture
def opened(app: Flask, client: FlaskClient, world: World, frozen_clock: Clock) -> Any:
    section, bids, _ = opening_with_bids(world, frozen_clock)
    shares = {
        a.id: share_for(world, section, a.id).to_dict()
        for a in (world.staff, world.supervisor, world.agent)
    }
    sid = section.id
    commit()
    return sid, bids, shares, Api(client)


def test_share_release_record_and_download(world: World, opened: Any) -> None:
    sid, _, shares, api = opened
    base = f"/api/v1/sections/{sid}/opening"
    r = api.call("GET", base)
    assert r.status_code == 200 and r.get_json()["state"] == "waiting_shares"
    assert "signed_in" not in r.get_json()  # the public does not see the live hall
    # a wrong share: 422 share_invalid, and the refusal is kept
    wrong = dict(shares[world.supervisor.id], index=1)
    r = api.call("POST", base + "/shares", world.staff, json={"share": wrong})
    assert r.status_code == 422 and r.get_json()["code"] == "share_invalid"
    assert r.get_json()["details"]["index"] == 1
    rows = list(db.get_session().scalars(select(ShareRelease)))
    assert [row.status for row in rows] == [ShareStatus.REFUSED]
    r = api.call("POST", base + "/shares", world.bidder_reps[0], json={"share": wrong})
    assert r.status_code == 403 and r.get_json()["code"] == "not_a_custodian"
    r = api.call("POST", base + "/shares", world.staff, json={})
    assert r.status_code == 400
    r = api.call("GET", f"/api/v1/sections/{sid}/opening/record")
    assert r.status_code == 404 and r.get_json()["code"] == "opening_record_not_published"
    r = api.call("POST", base + "/shares", world.staff, json={"share": shares[world.staff.id]})
    assert r.status_code == 201 and r.get_json()["shares_released"] == 1
    r = api.call(
        "POST", base + "/shares", world.supervisor, json={"share": shares[world.supervisor.id]}
    )
    assert r.status_code == 201  # k reached: decrypted eagerly after the commit
    state = api.call("GET", base, world.bidder_reps[0]).get_json()
    assert state["state"] == "completed" and state["progress"]["opened"] == 3
    r = api.call("GET", base + "/record")
    assert r.status_code == 200
    SignedDocument.from_dict(r.get_json()).verify_with_key(platform_key().public_key)
    r = api.call("GET", base + "/record?download=1")
    assert r.headers["Content-Disposition"].startswith("attachment")
    signed = SignedDocument.from_json(r.data)
    signed.verify_with_key(platform_key().public_key)
    assert [b["price"] for b in signed.document["bids"]] == [
        "4650000.00",
        "4700000.00",
        "4580000.00",
    ]
    # the public page shows the record
    page = api.client.get(f"/opening/{sid}")
    assert page.status_code == 200 and "4650000.00" in page.get_data(as_text=True)


def test_document_link_for_center_staff_only(world: World, opened: Any) -> None:
    sid, bids, shares, api = opened
    base = f"/api/v1/sections/{sid}/opening"
    for actor in (world.staff, world.supervisor):
        api.call("POST", base + "/shares", actor, json={"share": shares[actor.id]})
    bid_id = bids[0].bid.id
    r = api.call("GET", f"{base}/results/{bid_id}/document", world.bidder_reps[0])
    assert r.status_code == 403
    r = api.call("GET", f"{base}/results/{bid_id}/document", world.staff)
    assert r.status_code == 200 and r.get_json()["expires_in"] == 300
    download = api.client.get(r.get_json()["url"])
    assert download.status_code == 200
    with zipfile.ZipFile(io.BytesIO(download.data)) as zf:
        sheet = json.loads(zf.read("price_sheet.json"))
    assert sheet["total_price"] == "4650000.00"
    assert api.client.get("/opening/documents/forged-token").status_code == 404


def test_self_open_and_objections_over_http(world: World, opened: Any, frozen_clock: Clock) -> None:
    sid, bids, _, api = opened
    base = f"/api/v1/sections/{sid}/opening"
    r = api.call(
        "POST", base + "/self-open", world.bidder_reps[0], json={"data_key": bids[0].data_key.hex()}
    )
    assert r.status_code == 409 and r.get_json()["code"] == "self_open_not_allowed"
    r = api.call("POST", base + "/self-open", world.bidder_reps[0], json={"data_key": "zz" * 32})
    assert r.status_code == 400
    r = api.call("POST", base + "/sign-in", world.bidder_reps[0])
    assert r.status_code == 200 and r.get_json()["capacity"] == "bidder"
    r = api.call(
        "POST",
        base + "/objections",
        world.bidder_reps[0],
        json={"text": "对开标时间有异议，请核实。"},
    )
    assert r.status_code == 201
    oid = r.get_json()["id"]
    r = api.call(
        "POST",
        f"{base}/objections/{oid}/answer",
        world.bidder_reps[1],
        json={"answer": "不应由投标人答复。"},
    )
    assert r.status_code == 403
    r = api.call(
        "POST",
        f"{base}/objections/{oid}/answer",
        world.staff,
        json={"answer": "开标时间与公告一致。"},
    )
    assert r.status_code == 200 and r.get_json()["answered_by"]
    items = api.call("GET", base + "/objections", world.bidder_reps[2]).get_json()["items"]
    assert items[0]["answer"] == "开标时间与公告一致。"
    page = api.client.get(f"/opening/{sid}")
    assert page.status_code == 200


def test_openapi_documents_the_opening(client: FlaskClient) -> None:
    paths = client.get("/api/openapi.json").get_json()["paths"]
    for p in ("/shares", "/self-open", "/record", "/objections", "/sign-in"):
        assert f"/api/v1/sections/{{section_id}}/opening{p}" in paths

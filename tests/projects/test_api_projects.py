"""The projects API end to end: auth, object-level visibility, Idempotency-Key, ETag /
If-Match, uploads, review, two-step publication, clarifications, registration, objections."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bidding.accounts import services as accounts
from bidding.accounts.models import User
from bidding.core import db
from bidding.core.clock import Clock, isoformat_z
from bidding.core.roles import Actor
from tests.projects.factories import CLEAN_TEXT, World, custodian_keypair, timeline

BAD = "投标人须在本市注册的企业方可参加投标。\n"


@pytest.fixture
def api(app: Flask, client: FlaskClient, world: World) -> Api:
    db.get_session().commit()
    return Api(client, world)


class Api:
    def __init__(self, client: FlaskClient, world: World) -> None:
        self.client = client
        self.w = world
        self._tokens: dict[object, str] = {}

    def headers(self, actor: Actor | None, **extra: str) -> dict[str, str]:
        headers = dict(extra)
        if actor is not None:
            if actor.id not in self._tokens:
                issued = accounts.issue_token(
                    None, db.get_session().get(User, actor.id), ttl=90 * 86400
                )
                db.get_session().commit()
                self._tokens[actor.id] = issued.secret
            headers["Authorization"] = f"Bearer {self._tokens[actor.id]}"
        return headers

    def call(self, method: str, path: str, actor: Actor | None = None, **kw: Any) -> Any:
        headers = self.headers(actor, **kw.pop("headers", {}))
        response = self.client.open(path, method=method, headers=headers, **kw)
        db.session.remove()  # like a new request: no stale objects
        return response

    def project(self, **overrides: Any) -> dict[str, Any]:
        body = {
            "name": "某市人民医院门诊楼医疗设备采购项目",
            "kind": "tendering",
            "subject": "goods",
            "tenderer_id": str(self.w.tenderer.id),
            "agency_id": str(self.w.agency.id),
            "center_id": str(self.w.center.id),
            "region_code": "540200",
            "amount": "8000000.00",
            "funding_source": "财政资金",
        }
        body.update(overrides)
        r = self.call("POST", "/api/v1/projects", self.w.agent, json=body)
        assert r.status_code == 201, r.json
        return dict(r.json)

    def section(self, project: dict[str, Any], **overrides: Any) -> Any:
        body: dict[str, Any] = {
            "name": "门诊楼医疗设备采购",
            "estimated_price": "5000000.00",
            "maximum_price": "4900000.00",
            "bid_deposit": "50000.00",
            "bid_validity_days": 90,
            "committee_size": 5,
            "committee_experts": 4,
            "custodians": [
                {"user_id": str(self.w.staff.id), "role": "center_staff"},
                {"user_id": str(self.w.supervisor.id), "role": "supervisor"},
                {"user_id": str(self.w.agent.id), "role": "agency_staff"},
            ],
            "custodian_threshold": 2,
        }
        body.update({k: isoformat_z(v) for k, v in timeline().items()})
        body.update(overrides)
        return self.call(
            "POST", f"/api/v1/projects/{project['id']}/sections", self.w.agent, json=body
        )

    def path(self, section: dict[str, Any], tail: str = "") -> str:
        return f"/api/v1/projects/{section['project_id']}/sections/{section['id']}{tail}"

    def published(self, text: str = CLEAN_TEXT) -> dict[str, Any]:
        section = self.section(self.project()).json
        for actor in (self.w.staff, self.w.supervisor, self.w.agent):
            _, pem = custodian_keypair()
            r = self.call(
                "PUT", self.path(section, "/custodian-key"), actor, json={"public_key_pem": pem}
            )
            assert r.status_code == 200, r.json
        r = self.upload(section, text)
        assert r.status_code == 201, r.json
        r = self.call("POST", self.path(section, "/submit"), self.w.agent)
        assert r.status_code == 200, r.json
        for finding in r.json["findings"]:
            o = self.call(
                "POST",
                self.path(section, f"/findings/{finding['id']}/override"),
                self.w.staff,
                json={"reason": "经核实符合项目实际需要，予以保留。"},
            )
            assert o.status_code == 200, o.json
        r = self.call("POST", self.path(section, "/prepare-publication"), self.w.agent)
        assert r.status_code == 200, r.json
        r = self.call(
            "POST",
            self.path(section, "/publish"),
            self.w.agent,
            json={"fingerprint": r.json["fingerprint"]},
        )
        assert r.status_code == 200, r.json
        return dict(r.json)

    def upload(self, section: dict[str, Any], text: str, name: str = "招标文件.txt") -> Any:
        return self.call(
            "POST",
            self.path(section, "/documents"),
            self.w.agent,
            data={"file": (io.BytesIO(text.encode()), name, "text/plain")},
            content_type="multipart/form-data",
        )


def test_create_project_idempotency(api: Api) -> None:
    body = {
        "name": "项目甲",
        "kind": "tendering",
        "subject": "works",
        "tenderer_id": str(api.w.tenderer.id),
        "agency_id": str(api.w.agency.id),
        "center_id": str(api.w.center.id),
        "region_code": "540200",
        "amount": "1000000.00",
    }
    first = api.call(
        "POST", "/api/v1/projects", api.w.agent, json=body, headers={"Idempotency-Key": "k-1"}
    )
    assert first.status_code == 201, first.json
    assert first.json["transaction_code"].startswith("540200-2026-GZ-")
    assert first.json["amount"] == "1000000.00" and first.json["currency"] == "CNY"
    assert first.json["created_at"].endswith("Z")
    again = api.call(
        "POST", "/api/v1/projects", api.w.agent, json=body, headers={"Idempotency-Key": "k-1"}
    )
    assert again.status_code == 201
    assert again.json["id"] == first.json["id"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = api.call(
        "POST",
        "/api/v1/projects",
        api.w.agent,
        json={**body, "name": "项目乙"},
        headers={"Idempotency-Key": "k-1"},
    )
    assert other.status_code == 422 and other.json["code"] == "idempotency_key_reused"
    # another person may use the same key for their own request
    mine = api.call(
        "POST",
        "/api/v1/projects",
        api.w.tenderer_rep,
        json=body,
        headers={"Idempotency-Key": "k-1"},
    )
    assert mine.status_code == 201 and mine.json["id"] != first.json["id"]
    # a refused request stores nothing: the key may be used again
    bad = api.call(
        "POST",
        "/api/v1/projects",
        api.w.agent,
        json={**body, "region_code": "000000"},
        headers={"Idempotency-Key": "k-2"},
    )
    assert bad.status_code == 422 and bad.json["code"] == "invalid_region_code"
    ok = api.call(
        "POST", "/api/v1/projects", api.w.agent, json=body, headers={"Idempotency-Key": "k-2"}
    )
    assert ok.status_code == 201, ok.json


def test_create_project_refusals(api: Api) -> None:
    body = {"name": "x", "kind": "tendering", "subject": "works"}
    assert api.call("POST", "/api/v1/projects", None, json=body).status_code == 401
    r = api.call("POST", "/api/v1/projects", api.w.agent, json=body)
    assert r.status_code == 422 and r.json["code"] == "validation_error"
    r = api.call(
        "POST",
        "/api/v1/projects",
        api.w.outsider,
        json={
            **body,
            "tenderer_id": str(api.w.tenderer.id),
            "center_id": str(api.w.center.id),
            "region_code": "540200",
        },
    )
    assert r.status_code == 403 and r.json["code"] == "forbidden"
    r = api.call("POST", "/api/v1/projects", api.w.agent, json={**body, "amount": 12.5})
    assert r.status_code == 422


def test_section_etag_and_if_match(api: Api) -> None:
    project = api.project()
    created = api.section(project)
    assert created.status_code == 201, created.json
    section = created.json
    assert created.headers["ETag"] == section["etag"]
    assert section["estimated_price"] == "5000000.00" and section["currency"] == "CNY"
    assert section["bid_deadline"].endswith("Z") and section["state"] == "draft"
    got = api.call("GET", api.path(section), api.w.agent)
    etag = got.headers["ETag"]
    no_match = api.call("PATCH", api.path(section), api.w.agent, json={"name": "改名"})
    assert no_match.status_code == 428 and no_match.json["code"] == "precondition_failed"
    ok = api.call(
        "PATCH", api.path(section), api.w.agent, json={"name": "改名"}, headers={"If-Match": etag}
    )
    assert ok.status_code == 200 and ok.json["name"] == "改名"
    assert ok.headers["ETag"] != etag
    stale = api.call(
        "PATCH", api.path(section), api.w.agent, json={"name": "再改"}, headers={"If-Match": etag}
    )
    assert stale.status_code == 412 and stale.json["code"] == "precondition_failed"
    minimum = api.call(
        "PATCH",
        api.path(section),
        api.w.agent,
        json={"minimum_price": "100.00"},
        headers={"If-Match": ok.headers["ETag"]},
    )
    assert minimum.status_code == 422 and minimum.json["code"] == "minimum_price_forbidden"
    assert api.call("GET", api.path(section), api.w.agent).json["name"] == "改名"


def test_create_section_refusals(api: Api) -> None:
    project = api.project()
    r = api.section(project, minimum_price="1.00")
    assert r.status_code == 422 and r.json["code"] == "minimum_price_forbidden"
    r = api.section(project, bid_deposit="100000.01")
    assert r.status_code == 422 and r.json["code"] == "deposit_over_cap"
    assert r.json["details"]["legal_basis"]
    r = api.section(project, bid_deadline="2026-12-20T09:30:00")
    assert r.status_code == 422 and r.json["code"] == "validation_error"
    api.w.agent, saved = api.w.outsider, api.w.agent
    try:
        r = api.section(project)
    finally:
        api.w.agent = saved
    assert r.status_code == 404  # the outsider cannot see the project at all


def test_drafts_are_invisible_to_others(api: Api) -> None:
    section = api.section(api.project()).json
    for actor in (None, api.w.bidder_reps[0], api.w.outsider):
        r = api.call("GET", api.path(section), actor)
        assert r.status_code == 404 and r.json["code"] == "not_found"
        assert api.call("GET", api.path(section, "/documents"), actor).status_code == 404
    assert api.call("GET", api.path(section), api.w.supervisor).status_code == 200
    assert api.call("GET", api.path(section, "/findings"), api.w.staff).status_code == 200
    listed = api.call("GET", "/api/v1/sections", None).json
    assert listed["items"] == []
    listed = api.call("GET", "/api/v1/sections?state=draft", api.w.staff).json
    assert [s["id"] for s in listed["items"]] == [section["id"]]


def test_full_flow_over_http(api: Api, frozen_clock: Clock) -> None:
    section = api.published(CLEAN_TEXT + BAD)
    assert section["state"] == "published" and len(section["opening_key_fingerprint"]) == 64
    assert all(c["share_commitment"] for c in section["custodians"])
    # the public sees the announcement, the section and its documents
    announcements = api.call("GET", "/api/v1/announcements", None).json
    assert [s["id"] for s in announcements["items"]] == [section["id"]]
    assert api.call("GET", api.path(section), None).status_code == 200
    docs = api.call("GET", api.path(section, "/documents"), None).json["items"]
    assert len(docs) == 1 and docs[0]["size"] > 0
    link = api.call("GET", api.path(section, f"/documents/{docs[0]['id']}/download"), None)
    assert link.status_code == 200 and link.json["sha256"] == docs[0]["sha256"]
    # but not the review findings
    assert api.call("GET", api.path(section, "/findings"), None).status_code == 404
    findings = api.call("GET", api.path(section, "/findings"), api.w.staff).json["items"]
    assert findings and all(f["status"] == "overridden" for f in findings)
    # a retried publish with the same key returns the same result
    again = api.call(
        "POST",
        api.path(section, "/publish"),
        api.w.agent,
        json={},
        headers={"Idempotency-Key": "p-1"},
    )
    assert again.status_code == 200 and again.json["state"] == "published"
    # registration, objection, answer
    bidder = api.w.bidder_reps[0]
    r = api.call("POST", api.path(section, "/registrations"), bidder, json={})
    assert r.status_code == 201 and r.json["bidder"]["id"] == str(api.w.bidders[0].id)
    r = api.call("POST", api.path(section, "/registrations"), bidder, json={})
    assert r.status_code == 409 and r.json["code"] == "already_registered"
    r = api.call(
        "POST", api.path(section, "/objections"), bidder, json={"text": "资格条件限制外地企业。"}
    )
    assert r.status_code == 201 and r.json["status"] == "open"
    objection = r.json
    assert api.call("GET", api.path(section), None).json["paused"] is True
    r = api.call(
        "POST",
        api.path(section, f"/objections/{objection['id']}/answer"),
        api.w.agent,
        json={"answer": "已删除该条款。"},
    )
    assert r.status_code == 200 and r.json["status"] == "answered"
    assert (
        api.call("GET", api.path(section, "/objections"), api.w.bidder_reps[1]).json["items"] == []
    )
    # clarification 10 days before the deadline moves it so 15 days remain
    deadline = api.call("GET", api.path(section), None).json["bid_deadline"]
    from datetime import datetime

    frozen_clock.freeze(
        datetime.fromisoformat(deadline.replace("Z", "+00:00")) - timedelta(days=10)
    )
    r = api.call(
        "POST", api.path(section, "/clarifications"), api.w.agent, json={"text": "参数更正。"}
    )
    assert r.status_code == 201 and r.json["deadline_moved"] is True
    assert r.json["previous_deadline"] == deadline
    public = api.call("GET", api.path(section, "/clarifications"), None).json["items"]
    assert len(public) == 1
    new_deadline = datetime.fromisoformat(r.json["new_deadline"].replace("Z", "+00:00"))
    frozen_clock.freeze(new_deadline - timedelta(days=9))
    r = api.call("POST", api.path(section, "/objections"), bidder, json={"text": "太晚的异议"})
    assert r.status_code == 422 and r.json["code"] == "objection_too_late"
    # cancel
    r = api.call("POST", api.path(section, "/cancel"), api.w.agent, json={"reason": "短"})
    assert r.status_code == 422 and r.json["code"] == "reason_required"
    r = api.call(
        "POST", api.path(section, "/cancel"), bidder, json={"reason": "投标人无权终止招标。"}
    )
    assert r.status_code == 403


def test_publish_refused_with_open_findings(api: Api) -> None:
    section = api.section(api.project()).json
    for actor in (api.w.staff, api.w.supervisor, api.w.agent):
        _, pem = custodian_keypair()
        api.call("PUT", api.path(section, "/custodian-key"), actor, json={"public_key_pem": pem})
    r = api.call(
        "PUT",
        api.path(section, "/custodian-key"),
        api.w.bidder_reps[0],
        json={"public_key_pem": "x"},
    )
    assert r.status_code == 404  # the draft is invisible to the bidder
    assert api.upload(section, CLEAN_TEXT + BAD).status_code == 201
    bad = api.upload(section, "x", name="setup.exe")
    assert bad.status_code == 422 and bad.json["code"] == "unsupported_document_type"
    r = api.call("POST", api.path(section, "/submit"), api.w.agent)
    finding = r.json["findings"][0]
    assert finding["rule_id"] and finding["legal_basis"] and "本市注册" in finding["clause"]
    r = api.call("POST", api.path(section, "/prepare-publication"), api.w.agent)
    assert r.status_code == 422 and r.json["code"] == "review_findings_open"
    r = api.call("POST", api.path(section, "/publish"), api.w.agent, json={})
    assert r.status_code == 409 and r.json["code"] == "publication_not_prepared"
    r = api.call(
        "POST",
        api.path(section, f"/findings/{finding['id']}/override"),
        api.w.agent,
        json={"reason": "代理机构不能放行审查意见。"},
    )
    assert r.status_code == 403
    r = api.call(
        "POST",
        api.path(section, f"/findings/{finding['id']}/override"),
        api.w.staff,
        json={"reason": "同意"},
    )
    assert r.status_code == 422 and r.json["code"] == "override_reason_required"


def test_openapi_documents_the_endpoints(api: Api) -> None:
    spec = api.call("GET", "/api/openapi.json").json
    paths = spec["paths"]
    assert "/api/v1/projects" in paths
    section = "/api/v1/projects/{project_id}/sections/{section_id}"
    for tail in (
        "",
        "/documents",
        "/submit",
        "/prepare-publication",
        "/publish",
        "/clarifications",
        "/registrations",
        "/objections",
        "/cancel",
        "/custodian-key",
    ):
        assert section + tail in paths, tail
    params = {p["name"] for p in paths["/api/v1/projects"]["post"].get("parameters", [])}
    assert "Idempotency-Key" in params
    patch_params = {p["name"] for p in paths[section]["patch"].get("parameters", [])}
    assert "If-Match" in patch_params

"""The bids API over HTTP (SQLite, local storage)."""

from __future__ import annotations

import base64
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from bidding.accounts import services as account_services
from bidding.core import db
from bidding.core.roles import Actor
from bidding.core.signing_key import platform_key
from bidding.core.storage import get_storage
from crypto import merkle
from crypto.receipt import Receipt, verify_receipt
from tests.bids.helpers import BidWorld, Sealed, seal_bid


def auth(bw: BidWorld, actor: Actor) -> dict[str, str]:
    user = bw.world.users[actor.id]
    issued = account_services.issue_token(None, user)
    return {"Authorization": f"Bearer {issued.secret}"}


def base(bw: BidWorld) -> str:
    s = bw.section
    return f"/api/v1/projects/{s.project_id}/sections/{s.id}/bids"


def stream(client: FlaskClient, bw: BidWorld, headers: dict[str, str], sealed: Sealed) -> Any:
    return client.put(
        f"{base(bw)}/uploads/stream/up-{sealed.sha256[:8]}?sha256={sealed.sha256}",
        data=sealed.envelope,
        headers={**headers, "Content-Type": "application/octet-stream"},
    )


def commit_body(upload_id: str, sealed: Sealed) -> dict[str, Any]:
    return {
        "upload_id": upload_id,
        "manifest": sealed.manifest,
        "signature": base64.b64encode(sealed.signature).decode(),
        "certificate_chain": sealed.chain,
    }


def test_stream_commit_replay_receipt_and_proof(
    app: Flask, client: FlaskClient, bw: BidWorld
) -> None:
    h = auth(bw, bw.rep(0))
    sealed = seal_bid(bw, 0)
    db.get_session().commit()
    r = stream(client, bw, h, sealed)
    assert r.status_code == 201, r.get_json()
    upload = r.get_json()
    assert upload["state"] == "received" and "storage_key" not in upload
    body = commit_body(upload["id"], sealed)
    r = client.post(base(bw), json=body, headers={**h, "Idempotency-Key": "bid-1"})
    assert r.status_code == 201, r.get_json()
    first = r.get_json()
    assert first["replayed"] is False and first["bid"]["is_current"]
    r = client.post(base(bw), json=body, headers={**h, "Idempotency-Key": "bid-1"})
    assert r.status_code == 201 and r.headers["Idempotent-Replayed"] == "true"
    assert r.get_json()["bid"]["id"] == first["bid"]["id"]
    bid_id = first["bid"]["id"]

    r = client.get(f"{base(bw)}/{bid_id}/receipt", headers=h)
    assert r.status_code == 200
    receipt = Receipt.from_json(r.data)
    verify_receipt(receipt, platform_key().public_key)
    proof = client.get(f"{base(bw)}/{bid_id}/proof", headers=h).get_json()
    head = client.get("/api/v1/audit/tree-heads/latest").get_json() or {}
    assert proof["tree_size"] == receipt.tree_size
    assert receipt.root_hash is not None
    merkle.verify_inclusion(
        bytes.fromhex(proof["leaf_hash"]),
        proof["leaf_index"],
        proof["tree_size"],
        [bytes.fromhex(p) for p in proof["audit_path"]],
        bytes.fromhex(receipt.root_hash),
    )
    assert head is not None

    mine = client.get("/api/v1/bids/mine", headers=h).get_json()
    assert [b["id"] for b in mine["items"]] == [bid_id]
    status = client.get(f"{base(bw)}/status", headers=h).get_json()
    assert status["current"]["id"] == bid_id and status["accepting"] is True


def test_commit_needs_idempotency_key(client: FlaskClient, bw: BidWorld) -> None:
    h = auth(bw, bw.rep(0))
    sealed = seal_bid(bw, 0)
    db.get_session().commit()
    upload = stream(client, bw, h, sealed).get_json()
    r = client.post(base(bw), json=commit_body(upload["id"], sealed), headers=h)
    assert r.status_code == 422


def test_refusal_is_reported_with_code_and_audited(client: FlaskClient, bw: BidWorld) -> None:
    h = auth(bw, bw.rep(0))
    sealed = seal_bid(bw, 0, section_id="another")
    db.get_session().commit()
    upload = stream(client, bw, h, sealed).get_json()
    r = client.post(
        base(bw), json=commit_body(upload["id"], sealed), headers={**h, "Idempotency-Key": "k"}
    )
    assert r.status_code == 422 and r.get_json()["code"] == "bid_wrong_section"
    r = client.get(f"{base(bw)}/uploads/{upload['id']}", headers=h)
    assert r.get_json()["state"] == "refused"
    assert get_storage().list_keys("bids/") == []


def test_stream_checksum_mismatch_leaves_nothing(client: FlaskClient, bw: BidWorld) -> None:
    h = auth(bw, bw.rep(0))
    sealed = seal_bid(bw, 0)
    db.get_session().commit()
    r = client.put(
        f"{base(bw)}/uploads/stream/x?sha256={'0' * 64}", data=sealed.envelope, headers=h
    )
    assert r.status_code == 422 and r.get_json()["code"] == "checksum_mismatch"
    assert get_storage().list_keys("bids/") == []


def test_start_multipart_upload(client: FlaskClient, bw: BidWorld) -> None:
    h = auth(bw, bw.rep(0))
    sealed = seal_bid(bw, 0)
    db.get_session().commit()
    body = {"size": sealed.size, "sha256": sealed.sha256, "client_key": "m1"}
    r = client.post(f"{base(bw)}/uploads", json=body, headers=h)
    assert r.status_code == 201, r.get_json()
    ticket = r.get_json()
    assert [p["part_number"] for p in ticket["parts"]] == [1]
    url = ticket["parts"][0]["url"]
    put = client.put(url, data=sealed.envelope)  # the local store's signed link
    assert put.status_code == 200, put.get_json()
    again = client.post(f"{base(bw)}/uploads", json=body, headers=h).get_json()
    assert again["parts"] == [] and again["upload"]["id"] == ticket["upload"]["id"]
    r = client.post(
        base(bw),
        json=commit_body(ticket["upload"]["id"], sealed),
        headers={**h, "Idempotency-Key": "m1"},
    )
    assert r.status_code == 201, r.get_json()


def test_center_staff_sees_metadata_but_never_the_ciphertext(
    client: FlaskClient, bw: BidWorld
) -> None:
    bidder = auth(bw, bw.rep(0))
    staff = auth(bw, bw.world.staff)
    outsiders = [auth(bw, a) for a in (bw.world.tenderer_rep, bw.world.agent)]
    other = auth(bw, bw.rep(1))
    sealed = seal_bid(bw, 0)
    db.get_session().commit()
    upload = stream(client, bw, bidder, sealed).get_json()
    r = client.post(
        base(bw),
        json=commit_body(upload["id"], sealed),
        headers={**bidder, "Idempotency-Key": "k"},
    )
    bid_id = r.get_json()["bid"]["id"]
    listed = client.get(base(bw), headers=staff)
    assert listed.status_code == 200
    item = listed.get_json()["items"][0]
    assert item["id"] == bid_id
    assert not {"storage_key", "url", "download_url", "data_key"} & set(item)
    for suffix in ("/ciphertext", "/download", "/content", "/data-key"):
        assert client.get(f"{base(bw)}/{bid_id}{suffix}", headers=staff).status_code == 404
    # the upload session is the bidder's alone
    assert client.get(f"{base(bw)}/uploads/{upload['id']}", headers=staff).status_code == 404
    # who bid is confidential: the tenderer, the agency and other bidders see nothing
    for headers in outsiders:
        assert client.get(base(bw), headers=headers).status_code == 403
    assert client.get(base(bw), headers=other).get_json()["items"] == []
    assert client.get(f"{base(bw)}/{bid_id}", headers=other).status_code == 404
    assert client.get(f"{base(bw)}/{bid_id}/receipt", headers=other).status_code == 404


def test_withdraw_over_api(client: FlaskClient, bw: BidWorld) -> None:
    h = auth(bw, bw.rep(0))
    sealed = seal_bid(bw, 0)
    db.get_session().commit()
    upload = stream(client, bw, h, sealed).get_json()
    bid_id = client.post(
        base(bw), json=commit_body(upload["id"], sealed), headers={**h, "Idempotency-Key": "k"}
    ).get_json()["bid"]["id"]
    r = client.post(f"{base(bw)}/{bid_id}/withdraw", headers=h)
    assert r.status_code == 200 and r.get_json()["state"] == "withdrawn"
    r = client.post(f"{base(bw)}/{bid_id}/withdraw", headers=h)
    assert r.status_code == 409 and r.get_json()["code"] == "invalid_transition"


def test_openapi_documents_every_bids_endpoint(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").get_json()
    paths = [p for p in spec["paths"] if "/bids" in p]
    assert len(paths) >= 9
    commit = spec["paths"]["/api/v1/projects/{project_id}/sections/{section_id}/bids"]["post"]
    assert any(p["name"] == "Idempotency-Key" for p in commit["parameters"])

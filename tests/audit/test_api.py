"""The public transparency-log API: heads, proofs that verify, range refusals, details."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from flask import Flask, g
from flask.testing import FlaskClient

from bidding.core import db
from bidding.core.audit import record_event
from bidding.core.roles import Actor, Grant, Role
from crypto import merkle
from crypto.pki import key_id
from tests.audit.conftest import ALICE, record_and_commit, sequence


def _head(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/api/v1/audit/tree-head")
    assert response.status_code == 200, response.json
    return dict(response.json or {})


def _public_key(client: FlaskClient) -> Ed25519PublicKey:
    body = client.get("/api/v1/audit/public-key").json or {}
    key = load_pem_public_key(body["public_key_pem"].encode())
    assert isinstance(key, Ed25519PublicKey)
    assert key_id(key) == body["key_id"]
    assert base64.b64decode(body["public_key"]) == key.public_bytes_raw()
    return key


def _verified_head(client: FlaskClient) -> merkle.TreeHead:
    """Fetch the latest head and check its signature as an outside auditor would."""
    body = _head(client)
    head = merkle.TreeHead(
        body["tree_size"],
        bytes.fromhex(body["root_hash"]),
        merkle.TreeHead.truncate(
            __import__("datetime").datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
        ),
    )
    assert head.timestamp_ms == body["timestamp_ms"]
    assert base64.b64decode(body["signed_payload"]) == head.signing_payload()
    _public_key(client).verify(base64.b64decode(body["signature"]), head.signing_payload())
    return head


def test_no_head_yet_is_404(client: FlaskClient) -> None:
    response = client.get("/api/v1/audit/tree-head")
    assert response.status_code == 404
    assert response.json["code"] == "not_found"


def test_inclusion_proof_from_the_api_verifies_against_the_signed_head(
    client: FlaskClient,
) -> None:
    events = record_and_commit(11)
    sequence()
    head = _verified_head(client)
    assert head.tree_size == 11
    for event in events:
        response = client.get(f"/api/v1/audit/proofs/inclusion?event_id={event.id}")
        assert response.status_code == 200, response.json
        body = response.json
        assert body["leaf_index"] == event.leaf_index and body["tree_size"] == 11
        leaf = bytes.fromhex(body["leaf_hash"])
        assert leaf == event.leaf_hash
        merkle.verify_inclusion(
            leaf,
            body["leaf_index"],
            head.tree_size,
            [bytes.fromhex(p) for p in body["audit_path"]],
            head.root_hash,
        )
    # by index, for an older tree size
    response = client.get("/api/v1/audit/proofs/inclusion?leaf_index=2&tree_size=5")
    body = response.json
    leaves = [e.leaf_hash for e in sorted(events, key=lambda e: e.leaf_index or 0)]
    merkle.verify_inclusion(
        bytes.fromhex(body["leaf_hash"]),
        2,
        5,
        [bytes.fromhex(p) for p in body["audit_path"]],
        merkle.root([h for h in leaves[:5] if h]),
    )


def test_consistency_proof_between_two_signed_heads_verifies(client: FlaskClient) -> None:
    record_and_commit(5)
    sequence()
    old = _verified_head(client)
    record_and_commit(9)
    sequence()
    new = _verified_head(client)
    response = client.get(
        f"/api/v1/audit/proofs/consistency?first={old.tree_size}&second={new.tree_size}"
    )
    assert response.status_code == 200, response.json
    proof = [bytes.fromhex(p) for p in response.json["consistency_path"]]
    merkle.verify_consistency(old.tree_size, new.tree_size, old.root_hash, new.root_hash, proof)
    with pytest.raises(merkle.MerkleProofError):
        merkle.verify_consistency(
            old.tree_size, new.tree_size, merkle.leaf_hash(b"forged"), new.root_hash, proof
        )


def test_leaf_hashes_for_monitors(client: FlaskClient) -> None:
    record_and_commit(6)
    sequence()
    head = _verified_head(client)
    body = client.get("/api/v1/audit/leaf-hashes?start=0&end=6").json
    leaves = [bytes.fromhex(h) for h in body["leaf_hashes"]]
    assert merkle.root(leaves) == head.root_hash
    assert client.get("/api/v1/audit/leaf-hashes?start=3&end=7").status_code == 422


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/audit/proofs/inclusion?leaf_index=4&tree_size=4",
        "/api/v1/audit/proofs/inclusion?leaf_index=-1",
        "/api/v1/audit/proofs/inclusion?leaf_index=0&tree_size=5",
        "/api/v1/audit/proofs/inclusion?leaf_index=0&tree_size=0",
        "/api/v1/audit/proofs/inclusion",
        "/api/v1/audit/proofs/consistency?first=0&second=4",
        "/api/v1/audit/proofs/consistency?first=3&second=2",
        "/api/v1/audit/proofs/consistency?first=2&second=5",
        "/api/v1/audit/leaf-hashes?start=2&end=2",
    ],
)
def test_bad_ranges_are_refused(client: FlaskClient, url: str) -> None:
    record_and_commit(4)
    sequence()
    response = client.get(url)
    assert response.status_code == 422, response.json
    assert response.json["code"] == "audit_range_invalid"


def test_unknown_and_pending_events(client: FlaskClient) -> None:
    response = client.get(f"/api/v1/audit/proofs/inclusion?event_id={uuid.uuid4()}")
    assert response.status_code == 404
    [event] = record_and_commit(1)
    response = client.get(f"/api/v1/audit/proofs/inclusion?event_id={event.id}")
    assert response.status_code == 409
    assert response.json["code"] == "audit_event_pending"
    response = client.get("/api/v1/audit/proofs/inclusion?leaf_index=x")
    assert response.status_code == 422
    assert response.json["code"] == "validation_error"


def test_the_request_that_records_sequences_after_commit(app: Flask, client: FlaskClient) -> None:
    @app.post("/api/_test/record")
    def _record() -> Any:
        record_event(ALICE, "thing.made", "thing", "1", {"x": 1})
        return {"ok": True}

    assert client.post("/api/_test/record").status_code == 200
    assert _head(client)["tree_size"] == 1


_BEARER = {"Authorization": "Bearer test-injected"}


def _as(app: Flask, actor: Actor | None) -> None:
    """Make every request of ``app`` act as ``actor`` (bypassing token lookup)."""

    @app.before_request
    def _inject() -> None:
        g.actor = actor


def _staff(role: Role) -> Actor:
    return Actor(id=uuid.uuid4(), username="staff", grants=(Grant(role, center_id=uuid.uuid4()),))


@pytest.mark.parametrize("role", [Role.CENTER_STAFF, Role.SUPERVISOR, Role.CENTER_ADMIN])
def test_event_details_for_center_staff_and_supervisors(app: Flask, role: Role) -> None:
    _as(app, _staff(role))
    client = app.test_client()
    [event] = record_and_commit(1)
    sequence()
    response = client.get(f"/api/v1/audit/events/{event.id}", headers=_BEARER)
    assert response.status_code == 200, response.json
    body = response.json
    assert body["leaf_index"] == 0 and body["action"] == "thing.done"
    assert body["data"] == {"n": 0, "名称": "测试"}
    assert body["created_at"].endswith("Z")
    assert merkle.leaf_hash(body["leaf"].encode()).hex() == body["leaf_hash"]
    missing = client.get(f"/api/v1/audit/events/{uuid.uuid4()}", headers=_BEARER)
    assert missing.status_code == 404


def test_event_details_refused_to_anonymous(client: FlaskClient) -> None:
    [event] = record_and_commit(1)
    anonymous = client.get(f"/api/v1/audit/events/{event.id}")
    assert anonymous.status_code == 401
    assert anonymous.json["code"] == "not_signed_in"


def test_event_details_refused_to_bidders(app: Flask) -> None:
    _as(app, _staff(Role.BIDDER_REP))
    [event] = record_and_commit(1)
    bidder = app.test_client().get(f"/api/v1/audit/events/{event.id}", headers=_BEARER)
    assert bidder.status_code == 403
    assert bidder.json["code"] == "forbidden"


def test_openapi_documents_the_audit_endpoints(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").json
    for path in (
        "/api/v1/audit/tree-head",
        "/api/v1/audit/public-key",
        "/api/v1/audit/proofs/inclusion",
        "/api/v1/audit/proofs/consistency",
        "/api/v1/audit/leaf-hashes",
        "/api/v1/audit/events/{event_id}",
    ):
        assert path in spec["paths"], path
    assert "TreeHeadOut" in spec["components"]["schemas"]
    db.get_session()  # the spec does not need the database

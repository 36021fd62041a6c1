"""``PUT …/bids/submit/{key}``: stream and commit in one request (一次递交).

Either the upload and the bid are both stored, or neither is: every refusal — a bad
commit document, a bad signature, the deadline — leaves no upload row, no bid and no
object, and a refused commit is audited. A retry with the same ``Idempotency-Key``
returns the accepted bid without reading the body again."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select

from bidding.bids.models import Bid, BidUpload, UploadState
from bidding.core import db
from bidding.core.audit.models import AuditEvent
from bidding.core.clock import Clock
from bidding.core.storage import get_storage
from tests.bids.helpers import BidWorld, Sealed, seal_bid
from tests.bids.test_api import auth, base


def document(sealed: Sealed, **changes: Any) -> dict[str, Any]:
    doc = {
        "manifest": sealed.manifest,
        "signature": base64.b64encode(sealed.signature).decode(),
        "certificate_chain": sealed.chain,
    }
    doc.update(changes)
    return doc


def framed(doc: Any, envelope: bytes) -> bytes:
    raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return len(raw).to_bytes(4, "big") + raw + envelope


def put(
    client: FlaskClient,
    url: str,
    headers: dict[str, str],
    sealed: Sealed,
    body: bytes,
    *,
    upload_key: str | None = None,
    commit_key: str = "commit-1",
) -> Any:
    return client.put(
        f"{url}/submit/{upload_key or uuid.uuid4().hex}?sha256={sealed.sha256}",
        data=body,
        headers={
            **headers,
            "Content-Type": "application/octet-stream",
            "Idempotency-Key": commit_key,
        },
    )


def counts() -> tuple[int, int, list[str]]:
    s = db.get_session()
    s.rollback()
    bids = int(s.scalar(select(func.count(Bid.id))) or 0)
    uploads = int(s.scalar(select(func.count(BidUpload.id))) or 0)
    return bids, uploads, get_storage().list_keys("bids/")


def test_one_request_stores_and_commits_then_replays(client: FlaskClient, bw: BidWorld) -> None:
    h = auth(bw, bw.rep(0))
    sealed = seal_bid(bw, 0)
    db.get_session().commit()
    url = base(bw)
    r = put(client, url, h, sealed, framed(document(sealed), sealed.envelope))
    assert r.status_code == 201, r.get_json()
    out = r.get_json()
    assert out["bid"]["ciphertext_sha256"] == sealed.sha256
    assert out["bid"]["is_current"] is True
    assert out["receipt"]["bid_id"] == out["bid"]["id"]
    assert "Idempotent-Replayed" not in r.headers
    bids, uploads, keys = counts()
    assert (bids, uploads, len(keys)) == (1, 1, 1)
    upload = db.get_session().scalars(select(BidUpload)).one()
    assert upload.state is UploadState.COMMITTED and upload.method.value == "stream"
    # the answer was lost: the client sends it all again with the same keys
    again = put(client, url, h, sealed, framed(document(sealed), sealed.envelope))
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["bid"]["id"] == out["bid"]["id"]
    assert again.get_json()["proof"] is not None
    assert counts()[:2] == (1, 1)
    # the same commit key for another envelope is refused, and stores nothing
    other = seal_bid(bw, 0, price="4600000.00")
    db.get_session().commit()
    url = base(bw)
    r = put(client, url, h, other, framed(document(other), other.envelope))
    assert r.status_code == 422
    assert r.get_json()["code"] == "idempotency_key_reused"
    assert counts() == (1, 1, keys)


def test_refused_commit_leaves_nothing_and_is_audited(client: FlaskClient, bw: BidWorld) -> None:
    h = auth(bw, bw.rep(0))
    sealed = seal_bid(bw, 0)
    db.get_session().commit()
    url = base(bw)
    bad_signature = base64.b64encode(bytes(64)).decode()
    r = put(
        client, url, h, sealed, framed(document(sealed, signature=bad_signature), sealed.envelope)
    )
    assert r.status_code == 422, r.get_json()
    assert r.get_json()["code"] == "bid_signature_invalid"
    assert counts() == (0, 0, [])
    s = db.get_session()
    event = s.scalars(select(AuditEvent).where(AuditEvent.action == "bid.commit_refused")).one()
    assert event.data["code"] == "bid_signature_invalid"
    assert event.data["ciphertext_deleted"] is True
    # and the bidder can then submit properly with the same keys
    r = put(client, url, h, sealed, framed(document(sealed), sealed.envelope))
    assert r.status_code == 201, r.get_json()
    assert counts()[:2] == (1, 1)


def test_after_the_deadline_nothing_is_stored(
    client: FlaskClient, bw: BidWorld, frozen_clock: Clock
) -> None:
    h = auth(bw, bw.rep(1))
    sealed = seal_bid(bw, 1)
    db.get_session().commit()
    url = base(bw)
    frozen_clock.freeze(bw.section.bid_deadline)  # exactly at the deadline is late
    h = auth(bw, bw.rep(1))  # a token valid at that time
    r = put(client, url, h, sealed, framed(document(sealed), sealed.envelope))
    assert r.status_code == 422
    assert r.get_json()["code"] == "bid_deadline_passed"
    assert counts() == (0, 0, [])


def test_replay_after_the_deadline_returns_the_bid(
    client: FlaskClient, bw: BidWorld, frozen_clock: Clock
) -> None:
    h = auth(bw, bw.rep(1))
    sealed = seal_bid(bw, 1)
    db.get_session().commit()
    url = base(bw)
    first = put(client, url, h, sealed, framed(document(sealed), sealed.envelope))
    assert first.status_code == 201
    frozen_clock.move(timedelta(days=60))
    h = auth(bw, bw.rep(1))
    again = put(client, url, h, sealed, framed(document(sealed), sealed.envelope))
    assert again.status_code == 201
    assert again.get_json()["bid"]["id"] == first.get_json()["bid"]["id"]


def test_malformed_commit_documents_are_refused(client: FlaskClient, bw: BidWorld) -> None:
    h = auth(bw, bw.rep(2))
    sealed = seal_bid(bw, 2)
    db.get_session().commit()
    url = base(bw)
    env = sealed.envelope
    cases = [
        (b"\x00\x00", 400, "bad_request"),  # shorter than the length word
        ((0).to_bytes(4, "big") + env, 400, "bad_request"),  # empty document
        ((10**9).to_bytes(4, "big") + env, 400, "bad_request"),  # longer than the body
        (framed(b"{not json", env), 400, "malformed_json"),
        (framed(b"[1, 2]", env), 400, "bad_request"),
        (framed({"manifest": sealed.manifest}, env), 422, "validation_error"),
        (framed(document(sealed, certificate_chain=[]), env), 422, "validation_error"),
    ]
    for body, status, code in cases:
        r = put(client, url, h, sealed, body)
        assert (r.status_code, r.get_json()["code"]) == (status, code), (body[:40], r.get_json())
    missing = put(client, url, h, sealed, framed(document(sealed), env))
    assert missing.status_code == 201  # the same keys work once the body is right
    assert counts()[:2] == (1, 1)


def test_envelope_refusals_keep_their_codes(client: FlaskClient, bw: BidWorld) -> None:
    h = auth(bw, bw.rep(3))
    sealed = seal_bid(bw, 3)
    db.get_session().commit()
    url = base(bw)
    # a truncated envelope (its own hash declared): the framing check finds the cut
    cut = sealed.envelope[:-10]
    r = client.put(
        f"{url}/submit/k-cut?sha256={hashlib.sha256(cut).hexdigest()}",
        data=framed(document(sealed), cut),
        headers={**h, "Content-Type": "application/octet-stream", "Idempotency-Key": "c-cut"},
    )
    assert r.get_json()["code"] == "bid_envelope_invalid"
    # the declared hash is not the body's
    r = put(client, url, h, sealed, framed(document(sealed), sealed.envelope[:-1] + b"?"))
    assert r.get_json()["code"] == "checksum_mismatch"
    plain = b"PK\x03\x04 not an envelope" * 100
    r = client.put(
        f"{url}/submit/k-plain?sha256={hashlib.sha256(plain).hexdigest()}",
        data=framed(document(sealed), plain),
        headers={**h, "Content-Type": "application/octet-stream", "Idempotency-Key": "c-plain"},
    )
    assert r.get_json()["code"] == "bid_not_encrypted"
    assert counts() == (0, 0, [])

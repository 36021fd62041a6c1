"""Single presigned PUT uploads (method ``single``): the bytes go straight to the store
(one PUT), the commit checks the object's size and reads the envelope back. Services,
API and client on SQLite with the local store."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select

from bidding.bids import services
from bidding.bids.models import Bid, BidUpload, UploadMethod, UploadState
from bidding.core import db
from bidding.core.storage import get_storage
from tests.bids.helpers import BidWorld, Sealed, commit, seal_bid
from tests.bids.test_api import auth, base, commit_body
from tests.bids.test_client import bid_count, prepare, run
from tests.bids.test_services import assert_refused_and_deleted, refuse


def _start(bw: BidWorld, sealed: Sealed, key: str = "s-1", i: int = 0) -> services.UploadTicket:
    return services.start_upload(
        bw.rep(i),
        bw.section,
        size=sealed.size,
        sha256=sealed.sha256,
        client_key=key,
        method="single",
    )


def _put(up: BidUpload, data: bytes) -> None:
    """What the presigned PUT URL does."""
    get_storage().put(up.storage_key, io.BytesIO(data), length=len(data))


def test_single_put_upload_and_commit(bw: BidWorld) -> None:
    sealed = seal_bid(bw, 0)
    ticket = _start(bw, sealed)
    up = ticket.upload
    assert up.method is UploadMethod.SINGLE and up.state is UploadState.OPEN
    assert ticket.put_url and ticket.part_urls == [] and up.multipart_upload_id is None
    # committing before the PUT arrived: refused, the upload is kept for the PUT
    refuse("bid_upload_incomplete", commit, bw, 0, sealed, up)
    db.get_session().refresh(up)
    assert up.state is UploadState.OPEN and not get_storage().exists(up.storage_key)
    _put(up, sealed.envelope)
    _put(up, sealed.envelope)  # a retried PUT of the same bytes is harmless
    again = _start(bw, sealed)  # resumed: same session, a fresh URL
    assert again.upload.id == up.id and again.put_url
    result = commit(bw, 0, sealed, up)
    assert result.bid.storage_key == up.storage_key
    assert result.bid.ciphertext_sha256 == sealed.sha256
    assert up.state is UploadState.COMMITTED and up.received_at is not None


def test_single_put_refusals_leave_no_object(bw: BidWorld) -> None:
    sealed = seal_bid(bw, 0)
    for key, data, code in (
        ("short", sealed.envelope[:-1], "upload_incomplete"),
        ("long", sealed.envelope + b"\0", "upload_too_large"),
        ("flipped", sealed.envelope[:-1] + bytes([sealed.envelope[-1] ^ 1]), "checksum_mismatch"),
        ("plain", b"PK\x03\x04" + bytes(sealed.size - 4), "bid_not_encrypted"),
        ("cut", sealed.envelope[:64] + bytes(sealed.size - 64), "bid_envelope_invalid"),
    ):
        up = _start(bw, sealed, key=key).upload
        _put(up, data)
        refuse(code, commit, bw, 0, sealed, up)
        assert_refused_and_deleted(code, up)
    assert get_storage().list_keys("bids/") == []


def test_single_put_method_and_size_refusals(bw: BidWorld, app: Any) -> None:
    sealed = seal_bid(bw, 0)
    _start(bw, sealed, key="k")
    db.get_session().commit()
    # same key, other method: the session is not reused
    refuse(
        "bid_upload_unusable",
        services.start_upload,
        bw.rep(0),
        bw.section,
        size=sealed.size,
        sha256=sealed.sha256,
        client_key="k",
    )
    refuse(
        "validation_error",
        services.start_upload,
        bw.rep(0),
        bw.section,
        size=sealed.size,
        sha256=sealed.sha256,
        client_key="other",
        method="stream",
    )
    app.extensions["sunbid_settings"].extra["bid_single_put_max_mb"] = "1"
    try:
        err = refuse(
            "upload_too_large",
            services.start_upload,
            bw.rep(0),
            bw.section,
            size=(1 << 20) + 1,
            sha256="ab" * 32,
            client_key="big",
            method="single",
        )
        assert err.details["limit"] == 1 << 20
    finally:
        del app.extensions["sunbid_settings"].extra["bid_single_put_max_mb"]
    assert services.single_put_max_bytes() == 512 << 20


def test_api_single_put(client: FlaskClient, bw: BidWorld) -> None:
    h = auth(bw, bw.rep(0))
    sealed = seal_bid(bw, 0)
    db.get_session().commit()
    body = {"size": sealed.size, "sha256": sealed.sha256, "client_key": "s1", "method": "single"}
    r = client.post(f"{base(bw)}/uploads", json=body, headers=h)
    assert r.status_code == 201, r.get_json()
    ticket = r.get_json()
    assert ticket["upload"]["method"] == "single" and ticket["parts"] == []
    assert ticket["put_headers"]["Content-Type"] == "application/octet-stream"
    put = client.put(ticket["put_url"], data=sealed.envelope, headers=ticket["put_headers"])
    assert put.status_code == 200, put.get_json()
    r = client.post(
        base(bw),
        json=commit_body(ticket["upload"]["id"], sealed),
        headers={**h, "Idempotency-Key": "s1"},
    )
    assert r.status_code == 201, r.get_json()
    # the PUT URL outlives the commit, but it is bound to the declared bytes: replaying it
    # with other bytes is refused and the committed ciphertext stays as it was
    key = db.get_session().scalars(select(Bid.storage_key).where(Bid.client_key == "s1")).one()
    other = bytes(b ^ 0x55 for b in sealed.envelope)
    again = client.put(ticket["put_url"], data=other, headers=ticket["put_headers"])
    assert again.status_code == 422, (again.status_code, again.data[:300])
    assert again.get_json()["code"] == "checksum_mismatch"
    assert get_storage().hash_object(key) == (sealed.size, sealed.sha256)
    same = client.put(ticket["put_url"], data=sealed.envelope, headers=ticket["put_headers"])
    assert same.status_code == 200  # the declared bytes again: harmless
    assert get_storage().hash_object(key) == (sealed.size, sealed.sha256)
    bad = client.post(f"{base(bw)}/uploads", json={**body, "method": "stream"}, headers=h)
    assert bad.status_code in (400, 422)
    multipart = client.post(
        f"{base(bw)}/uploads", json={**body, "client_key": "m1", "method": None}, headers=h
    )
    assert multipart.status_code in (400, 422)
    spec = client.get("/api/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    start_in = next(v for k, v in schemas.items() if k.startswith("StartUploadIn"))
    assert start_in["properties"]["method"]["enum"] == ["multipart", "single"]
    ticket_out = next(v for k, v in schemas.items() if k.startswith("UploadTicketOut"))
    assert "put_url" in ticket_out["properties"]


def test_client_single_put_resumes_after_network_faults(
    client: FlaskClient, bw: BidWorld, tmp_path: Path
) -> None:
    transport, token, files = prepare(bw, client, tmp_path)
    out = files["out"]
    opts = ("--stream-max-mb", "0")  # above the stream threshold, below the single-PUT max
    transport.fail = [("PUT", "/storage/", "before")]
    r = run(transport, token, "submit", *opts, str(out))
    assert r.exit_code == 5 and "network_error" in r.output
    state = json.loads(out.with_name("bid.env.state.json").read_text())
    assert state["method"] == "single" and state["upload_id"] and not state.get("uploaded")
    # the PUT's answer is lost (the object is stored): the re-run PUTs again
    transport.fail = [("PUT", "/storage/", "after")]
    r = run(transport, token, "submit", *opts, str(out))
    assert r.exit_code == 5
    # the commit's answer is lost: the bid was accepted, the client does not know
    transport.fail = [("POST", f"{bw.section.id}/bids", "after")]
    r = run(transport, token, "submit", *opts, str(out))
    assert r.exit_code == 5 and bid_count() == 1
    r = run(transport, token, "submit", *opts, str(out))
    assert r.exit_code == 0 and "重复请求" in r.output
    assert bid_count() == 1
    puts = [c for c in transport.calls if c[0] == "PUT" and "/storage/" in c[1]]
    assert len(puts) == 3  # the first never left, the second was stored, the third re-PUT
    assert db.get_session().scalar(select(func.count(BidUpload.id))) == 1
    only = db.get_session().scalars(select(Bid)).one()
    assert db.get_session().get(BidUpload, only.upload_id).method is UploadMethod.SINGLE  # type: ignore[union-attr]


def test_the_upload_start_is_logged_by_the_commit(bw: BidWorld) -> None:
    """``bid.upload_started`` runs no sequencing pass of its own: the bid's commit, which
    needs the log at once for its receipt, appends it just before its own event."""
    from bidding.core.audit import AuditEvent

    sealed = seal_bid(bw, 0)
    db.get_session().commit()
    db.end_scope()  # the set-up's own events are sequenced here
    s = db.get_session()
    up = _start(bw, sealed).upload
    s.commit()
    db.end_scope()
    s = db.get_session()
    started = s.scalars(select(AuditEvent).where(AuditEvent.action == "bid.upload_started")).one()
    assert started.leaf_index is None  # recorded with the upload, not yet in the log
    _put(s.get(BidUpload, up.id), sealed.envelope)
    result = commit(bw, 0, sealed, s.get(BidUpload, up.id))
    s.commit()
    # appended by the commit's own pass, beside its event (same clock reading in tests:
    # the order between the two then follows their ids)
    leaf = s.get(AuditEvent, started.id).leaf_index
    assert leaf is not None and abs(leaf - result.bid.log_index) == 1

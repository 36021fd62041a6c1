"""The bidder's client (``sunbid bid …``) against the app through a test transport."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from bidding.accounts import services as account_services
from bidding.bids.client import ClientError, HttpResponse, bid
from bidding.bids.models import Bid, BidUpload, UploadMethod
from bidding.core import db
from bidding.core.signing_key import platform_key
from tests.bids.helpers import BidWorld, price_sheet


class FlaskTransport:
    """Sends the client's requests to the Flask test client; can fail on demand."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.fail: list[tuple[str, str, str]] = []  # (method, path fragment, "before"|"after")
        self.calls: list[tuple[str, str]] = []

    def __call__(
        self, method: str, url: str, *, body: Any = None, headers: dict[str, str] | None = None
    ) -> HttpResponse:
        path = url.split("://", 1)[-1]
        path = path[path.index("/") :]
        self.calls.append((method, path))

        def hit(rule: tuple[str, str, str], when: str) -> bool:
            anywhere = rule[1].startswith(("/storage", "/submit/"))
            where = rule[1] in path if anywhere else path.endswith(rule[1])
            return rule[0] == method and where and rule[2] == when

        for rule in list(self.fail):
            if hit(rule, "before"):
                self.fail.remove(rule)
                raise ClientError(5, "network_error", "simulated fault before sending")
        data = body.read() if hasattr(body, "read") else body
        h = {k: v for k, v in (headers or {}).items() if k.lower() != "content-length"}
        r = self.client.open(path, method=method, data=data, headers=h)
        for rule in list(self.fail):
            if hit(rule, "after"):
                self.fail.remove(rule)
                raise ClientError(5, "network_error", "simulated fault: the answer was lost")
        return HttpResponse(r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.data)


def setup_files(bw: BidWorld, tmp_path: Path) -> dict[str, Path]:
    cert = bw.cert(0)
    files = {
        "cert": tmp_path / "bidder.pem",
        "key": tmp_path / "bidder.key",
        "sheet": tmp_path / "sheet.json",
        "docs": tmp_path / "docs",
        "out": tmp_path / "out" / "bid.env",
        "platform": tmp_path / "platform.pem",
    }
    files["cert"].write_bytes(cert.certificate_pem)
    files["key"].write_bytes(cert.key_pem)
    sheet = price_sheet(bw.section, bw.org(0))
    del sheet["section_id"], sheet["bidder_credit_code"]  # the client fills them in
    files["sheet"].write_text(json.dumps(sheet, ensure_ascii=False), encoding="utf-8")
    files["docs"].mkdir()
    (files["docs"] / "商务标.pdf").write_bytes(b"%PDF-1.4 business part" * 100)
    (files["docs"] / "技术标.pdf").write_bytes(b"%PDF-1.4 technical part" * 100)
    files["platform"].write_text(platform_key().public_pem)
    return files


def run(transport: FlaskTransport, token: str, *args: str) -> Any:
    obj = {"api_url": "http://localhost", "token": token, "transport": transport}
    return CliRunner().invoke(bid, list(args), obj=obj, catch_exceptions=False)


def prepare(
    bw: BidWorld, client: FlaskClient, tmp_path: Path, *, attachment: int = 0
) -> tuple[FlaskTransport, str, dict[str, Path]]:
    token = account_services.issue_token(None, bw.world.users[bw.rep(0).id]).secret
    files = setup_files(bw, tmp_path)
    if attachment:  # incompressible bytes, to make the envelope that much larger
        (files["docs"] / "附件.bin").write_bytes(os.urandom(attachment))
    db.get_session().commit()
    transport = FlaskTransport(client)
    s = bw.section
    r = run(
        transport,
        token,
        "seal",
        str(files["docs"]),
        "--price-sheet",
        str(files["sheet"]),
        "--project",
        str(s.project_id),
        "--section",
        str(s.id),
        "--cert",
        str(files["cert"]),
        "--key",
        str(files["key"]),
        "-o",
        str(files["out"]),
    )
    assert r.exit_code == 0, r.output
    return transport, token, files


#: options that make the client use presigned multipart for a small envelope
MULTIPART = ("--stream-max-mb", "0", "--single-put-max-mb", "0")


def bid_count() -> int:
    return int(db.get_session().scalar(select(func.count(Bid.id))) or 0)


def test_seal_submit_and_verify_receipt(client: FlaskClient, bw: BidWorld, tmp_path: Path) -> None:
    transport, token, files = prepare(bw, client, tmp_path)
    out = files["out"]
    assert not list(out.parent.glob(".bid-*"))  # the plaintext zip is gone
    r = run(transport, token, "submit", str(out))
    assert r.exit_code == 0, r.output
    assert "已递交" in r.output
    receipt = out.with_name("bid.env.receipt.json")
    r = run(
        transport,
        token,
        "verify-receipt",
        str(receipt),
        "--platform-key",
        str(files["platform"]),
        "--envelope",
        str(out),
        "--proof",
        "--project",
        str(bw.section.project_id),
    )
    assert r.exit_code == 0, r.output
    assert "回执有效" in r.output and "包含" in r.output
    # a second submit is a harmless replay
    r = run(transport, token, "submit", str(out))
    assert r.exit_code == 0 and "重复请求" in r.output
    assert bid_count() == 1
    r = run(
        transport,
        token,
        "status",
        "--project",
        str(bw.section.project_id),
        "--section",
        str(bw.section.id),
    )
    assert r.exit_code == 0 and json.loads(r.output)["current"] is not None


def test_streamed_submit_whose_answer_is_lost_is_replayed(
    client: FlaskClient, bw: BidWorld, tmp_path: Path
) -> None:
    transport, token, files = prepare(bw, client, tmp_path)
    out = files["out"]
    transport.fail = [("PUT", "/submit/", "before")]
    r = run(transport, token, "submit", str(out))
    assert r.exit_code == 5 and bid_count() == 0
    transport.fail = [("PUT", "/submit/", "after")]  # accepted; the answer never arrives
    r = run(transport, token, "submit", str(out))
    assert r.exit_code == 5 and bid_count() == 1
    r = run(transport, token, "submit", str(out))
    assert r.exit_code == 0 and "重复请求" in r.output, r.output
    assert bid_count() == 1
    assert db.get_session().scalar(select(func.count(BidUpload.id))) == 1
    submits = [c for c in transport.calls if c[0] == "PUT" and "/submit/" in c[1]]
    assert len(submits) == 3 and not [c for c in transport.calls if c[0] == "POST"]


def test_client_falls_back_to_a_presigned_put_when_the_server_streams_less(
    app: Flask, client: FlaskClient, bw: BidWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    transport, token, files = prepare(bw, client, tmp_path, attachment=1_300_000)
    extra = app.extensions["sunbid_settings"].extra
    monkeypatch.setitem(extra, "bid_stream_max_mb", "1")  # the client assumes 64
    seen = len(transport.calls)
    r = run(transport, token, "submit", str(files["out"]))
    assert r.exit_code == 0, r.output
    state = json.loads(files["out"].with_name("bid.env.state.json").read_text())
    assert state["method"] == "single"
    kinds = [
        (m, "submit" if "/submit/" in u else u.rsplit("/", 1)[-1])
        for m, u in transport.calls[seen:]
    ]
    assert kinds[0] == ("PUT", "submit")  # refused (upload_too_large), nothing stored
    assert ("POST", "uploads") in kinds and ("POST", "bids") in kinds
    only = db.get_session().scalars(select(Bid)).one()
    assert db.get_session().get(BidUpload, only.upload_id).method is UploadMethod.SINGLE  # type: ignore[union-attr]
    assert db.get_session().scalar(select(func.count(BidUpload.id))) == 1


def test_multipart_resume_after_network_faults(
    client: FlaskClient, bw: BidWorld, tmp_path: Path
) -> None:
    transport, token, files = prepare(bw, client, tmp_path)
    out = files["out"]
    transport.fail = [("PUT", "/storage/", "before")]
    r = run(transport, token, "submit", *MULTIPART, str(out))
    assert r.exit_code == 5 and "network_error" in r.output
    state = json.loads(out.with_name("bid.env.state.json").read_text())
    assert state["multipart"] and state["done_parts"] == []
    # the commit's answer is lost: the bid was accepted, the client does not know
    transport.fail = [("POST", f"{bw.section.id}/bids", "after")]
    r = run(transport, token, "submit", *MULTIPART, str(out))
    assert r.exit_code == 5
    assert bid_count() == 1
    r = run(transport, token, "submit", *MULTIPART, str(out))
    assert r.exit_code == 0 and "重复请求" in r.output
    assert bid_count() == 1
    uploads_started = [c for c in transport.calls if c[0] == "POST" and c[1].endswith("/uploads")]
    assert len(uploads_started) == 2  # the second run resumed the same upload (client key)
    from bidding.bids.models import BidUpload

    assert db.get_session().scalar(select(func.count(BidUpload.id))) == 1


def test_refusal_prints_server_code(client: FlaskClient, bw: BidWorld, tmp_path: Path) -> None:
    transport, token, files = prepare(bw, client, tmp_path)
    bid_file = files["out"].with_name("bid.env.bid.json")
    data = json.loads(bid_file.read_text())
    data["signature"] = "AAAA" + data["signature"][4:]
    bid_file.write_text(json.dumps(data))
    r = run(transport, token, "submit", str(files["out"]))
    assert r.exit_code == 2
    assert "error[bid_signature_invalid]" in r.output


def test_withdraw_command(client: FlaskClient, bw: BidWorld, tmp_path: Path) -> None:
    transport, token, files = prepare(bw, client, tmp_path)
    assert run(transport, token, "submit", str(files["out"])).exit_code == 0
    state = json.loads(files["out"].with_name("bid.env.state.json").read_text())
    s = bw.section
    r = run(
        transport,
        token,
        "withdraw",
        state["bid_id"],
        "--project",
        str(s.project_id),
        "--section",
        str(s.id),
    )
    assert r.exit_code == 0 and "已撤回" in r.output
    r = run(
        transport,
        token,
        "withdraw",
        state["bid_id"],
        "--project",
        str(s.project_id),
        "--section",
        str(s.id),
    )
    assert r.exit_code == 2 and "invalid_transition" in r.output

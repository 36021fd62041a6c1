"""The bids API: ``/api/v1/projects/{pid}/sections/{sid}/bids/…`` and ``/api/v1/bids/mine``.

=========================================  ==============================================
``POST   …/bids/uploads``                  start (or resume) a presigned upload: multipart
                                           (part URLs) or ``method: single`` (``put_url``)
``PUT    …/bids/submit/{key}``             stream the envelope and commit it in one
                                           request: a 4-byte length, the commit document
                                           (JSON), the envelope (``?sha256=``,
                                           ``Idempotency-Key``); both stored or neither
``PUT    …/bids/uploads/stream/{key}``     stream the envelope through the API (Content-
                                           Length required, ``?sha256=``); ``key`` is the
                                           client's upload key, so a retry is harmless
``GET    …/bids/uploads/{id}``             the bidder's own upload session
``DELETE …/bids/uploads/{id}``             abandon an upload (its object is deleted)
``POST   …/bids``                          commit (``Idempotency-Key`` required)
``GET    …/bids``                          bidder: its own; center staff/supervisor: all
                                           (metadata only); others 403
``GET    …/bids/status``                   the bidder's status for the section
``GET    …/bids/{id}``                     one bid (owner or center staff/supervisor)
``POST   …/bids/{id}/withdraw``            withdraw before the deadline
``GET    …/bids/{id}/receipt``             the signed receipt (JSON file)
``GET    …/bids/{id}/proof``               its inclusion proof (``?tree_size=``)
``GET    /api/v1/bids/mine``               the bidder's bids in every section
=========================================  ==============================================

No endpoint returns a ciphertext, its storage key or a link to it: before the opening
nobody — center staff included — can download a sealed bid (the opening domain adds that).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from apiflask import APIBlueprint
from flask import Flask, Response, request
from flask_babel import gettext as _
from marshmallow import ValidationError

from bidding.bids import schemas, services
from bidding.bids.models import Bid, BidUpload
from bidding.core import db
from bidding.core.auth import current_actor, token_auth
from bidding.core.errors import DomainError, ErrorCode, RuleViolation
from bidding.core.pagination import PageQuery, page_schema
from bidding.core.request_body import body_reader, read_exactly
from bidding.core.roles import Actor
from bidding.projects.models import Section
from bidding.projects.services import get_section
from crypto.canonical import canonical_json

bp = APIBlueprint("bids_api", __name__, url_prefix="/api/v1", tag="Bids")

BIDS = "/projects/<uuid:project_id>/sections/<uuid:section_id>/bids"


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def _actor() -> Actor:
    actor = current_actor()
    assert actor is not None  # guaranteed by auth_required
    return actor


def _section(project_id: uuid.UUID, section_id: uuid.UUID) -> Section:
    return get_section(current_actor(), project_id, section_id)


def _content_length() -> int:
    """The request body's declared length (a streamed upload needs it: 411 without)."""
    length = request.content_length
    if length is None:
        raise DomainError(
            _("请提供 Content-Length 请求头。"),
            code=ErrorCode.BAD_REQUEST,
            http_status=411,
        )
    return length


def upload_dict(u: BidUpload) -> dict[str, Any]:
    return {
        "id": u.id,
        "section_id": u.section_id,
        "bidder_id": u.bidder_id,
        "client_key": u.client_key,
        "method": str(u.method),
        "state": str(u.state),
        "size": u.expected_size,
        "sha256": u.expected_sha256,
        "part_size": u.part_size,
        "part_count": u.part_count,
        "created_at": u.created_at,
        "expires_at": u.expires_at,
        "received_at": u.received_at,
        "refusal_code": u.refusal_code,
    }


def bid_dict(b: Bid) -> dict[str, Any]:
    return {
        "id": b.id,
        "section_id": b.section_id,
        "bidder_id": b.bidder_id,
        "bidder_name": b.bidder.name,
        "bidder_credit_code": b.bidder.credit_code,
        "submitted_by_id": b.submitted_by_id,
        "state": str(b.state),
        "is_current": b.is_current,
        "ciphertext_sha256": b.ciphertext_sha256,
        "ciphertext_size": b.ciphertext_size,
        "ciphertext_deleted": b.ciphertext_deleted_at is not None,
        "data_key_commitment": b.data_key_commitment,
        "opening_key_fingerprint": b.opening_key_fingerprint,
        "signer_key_id": b.signer_key_id,
        "committed_at": b.committed_at,
        "log_index": b.log_index,
        "superseded_at": b.superseded_at,
        "superseded_by_id": b.superseded_by_id,
        "withdrawn_at": b.withdrawn_at,
    }


def _ticket_dict(ticket: services.UploadTicket) -> dict[str, Any]:
    return {
        "upload": upload_dict(ticket.upload),
        "part_size": ticket.part_size,
        "parts": [{"part_number": n, "url": url} for n, url in ticket.part_urls],
        "done_parts": [
            {"part_number": p.part_number, "etag": p.etag, "size": p.size}
            for p in ticket.done_parts
        ],
        "put_url": ticket.put_url,
        "put_headers": ticket.put_headers,
        "url_expires_in": services.PART_URL_SECONDS,
    }


def commit_dict(result: services.CommitResult) -> dict[str, Any]:
    # A fresh commit answers while its transaction (and the section lock) is still open:
    # the proof, a few more queries, is left to ``GET …/proof``; a replay carries it.
    return {
        "bid": bid_dict(result.bid),
        "receipt": result.bid.receipt,
        "proof": result.proof.to_dict() if result.replayed else None,
        "replayed": result.replayed,
    }


# --------------------------------------------------------------------------- uploads


@bp.post(f"{BIDS}/uploads")
@bp.auth_required(token_auth)
@bp.input(schemas.StartUploadIn, arg_name="data")
@bp.output(schemas.UploadTicketOut, status_code=201)
def start_upload(project_id: uuid.UUID, section_id: uuid.UUID, data: dict[str, Any]) -> Any:
    """Start (or resume, with the same ``client_key``) a presigned upload of the sealed bid
    straight to the object store: ``multipart`` (returns the URLs of the parts still to
    send) or ``single`` (returns one ``put_url`` for the whole envelope)."""
    section = _section(project_id, section_id)
    ticket = services.start_upload(
        _actor(),
        section,
        size=data["size"],
        sha256=data["sha256"].lower(),
        client_key=data["client_key"],
        method=data["method"],
    )
    return _ticket_dict(ticket), 201


@bp.put(f"{BIDS}/uploads/stream/<string:client_key>")
@bp.auth_required(token_auth)
@bp.input(schemas.StreamUploadQuery, location="query", arg_name="query")
@bp.doc(
    description="Body: the envelope bytes (application/octet-stream); Content-Length "
    "is required. Up to SUNBID_BID_STREAM_MAX_MB (default 64 MiB); larger bids use the "
    "multipart upload."
)
@bp.output(schemas.UploadOut, status_code=201)
def stream_upload(
    project_id: uuid.UUID, section_id: uuid.UUID, client_key: str, query: dict[str, Any]
) -> Any:
    """Stream the sealed bid through the platform into quarantine."""
    section = _section(project_id, section_id)
    length = _content_length()
    upload = services.upload_bid_stream(
        _actor(),
        section,
        body_reader(),
        length,
        sha256=query["sha256"].lower(),
        client_key=client_key,
    )
    return upload_dict(upload), 201


#: Largest commit document in front of the envelope in ``PUT …/bids/submit/{key}``.
MAX_SUBMIT_DOCUMENT = 256 * 1024


@bp.put(f"{BIDS}/submit/<string:client_key>")
@bp.auth_required(token_auth)
@bp.input(schemas.CommitHeaders, location="headers", arg_name="headers")
@bp.input(schemas.StreamUploadQuery, location="query", arg_name="query")
@bp.doc(
    description="Stream and commit in one request (一次递交). Body "
    "(application/octet-stream, Content-Length required): a 4-byte big-endian length N, "
    "N bytes of JSON — the commit document without upload_id: manifest, signature, "
    "certificate_chain — then the envelope bytes (up to SUNBID_BID_STREAM_MAX_MB). "
    "`sha256` is the envelope's; `client_key` keys the upload, `Idempotency-Key` the "
    "commit. Either both are stored or neither is; the answer is the commit's."
)
@bp.output(schemas.CommitOut, status_code=201)
def submit_bid(
    project_id: uuid.UUID,
    section_id: uuid.UUID,
    client_key: str,
    query: dict[str, Any],
    headers: dict[str, Any],
) -> Any:
    """Stream the sealed bid through the platform and commit it (递交投标文件)."""
    section = _section(project_id, section_id)
    length = _content_length()
    reader = body_reader()
    data, used = _commit_document(reader, length)
    actor = _actor()
    result = services.submit_bid_stream(
        actor,
        section,
        reader,
        length - used,
        sha256=query["sha256"].lower(),
        upload_key=client_key,
        commit_key=headers["idempotency_key"],
        manifest=data["manifest"],
        signature=data["signature"],
        certificate_chain=data["certificate_chain"],
    )
    response_headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    body = commit_dict(result)
    db.commit_now()  # as in commit_bid: the locks go before the answer is serialised
    return body, 201, response_headers


def _commit_document(reader: Any, length: int) -> tuple[dict[str, Any], int]:
    """The length-prefixed commit document in front of the envelope: (fields, bytes used)."""
    bad = DomainError(
        _("请求体格式不正确：应为 4 字节长度、投标清单 JSON，其后为投标文件密文。"),
        code=ErrorCode.BAD_REQUEST,
    )
    try:
        prefix = read_exactly(reader, 4)
        size = int.from_bytes(prefix, "big") if len(prefix) == 4 else -1
        if not 0 < size <= min(MAX_SUBMIT_DOCUMENT, length - 4):
            raise bad
        raw = read_exactly(reader, size)
    except OSError:
        raise bad from None
    if len(raw) != size:
        raise bad
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise DomainError(_("投标清单不是有效的 JSON。"), code=ErrorCode.MALFORMED_JSON) from None
    if not isinstance(doc, dict):
        raise bad
    try:
        data = schemas.SubmitDocument().load(doc)
    except ValidationError as err:
        raise RuleViolation(
            _("提交的数据不符合要求，请按 details 中列出的字段更正后重试。"),
            code=ErrorCode.VALIDATION_ERROR,
            details={"json": err.messages},
        ) from None
    return data, 4 + size


@bp.get(f"{BIDS}/uploads/<uuid:upload_id>")
@bp.auth_required(token_auth)
@bp.output(schemas.UploadOut)
def get_upload(project_id: uuid.UUID, section_id: uuid.UUID, upload_id: uuid.UUID) -> Any:
    section = _section(project_id, section_id)
    return upload_dict(services.get_upload(_actor(), section, upload_id))


@bp.delete(f"{BIDS}/uploads/<uuid:upload_id>")
@bp.auth_required(token_auth)
@bp.output(schemas.UploadOut)
def abort_upload(project_id: uuid.UUID, section_id: uuid.UUID, upload_id: uuid.UUID) -> Any:
    section = _section(project_id, section_id)
    upload = services.get_upload(_actor(), section, upload_id)
    return upload_dict(services.abort_upload(_actor(), upload))


# --------------------------------------------------------------------------- bids


@bp.post(BIDS)
@bp.auth_required(token_auth)
@bp.input(schemas.CommitHeaders, location="headers", arg_name="headers")
@bp.input(schemas.CommitIn, arg_name="data")
@bp.output(schemas.CommitOut, status_code=201)
def commit_bid(
    project_id: uuid.UUID, section_id: uuid.UUID, data: dict[str, Any], headers: dict[str, Any]
) -> Any:
    """Commit the uploaded sealed bid with its signed manifest (递交投标文件).

    Returns the bid and the signed receipt (log index, tree size and root of the signed
    tree head that includes the acceptance). ``proof`` is null in the first answer (it is
    not computed while the section is locked): fetch it from ``GET …/bids/{id}/proof``. A
    retry with the same ``Idempotency-Key`` returns the first result (``replayed``: true)
    with its proof."""
    section = _section(project_id, section_id)
    actor = _actor()
    upload = services.get_upload(actor, section, data["upload_id"])
    result = services.commit_bid(
        actor,
        section,
        upload,
        manifest=data["manifest"],
        signature=data["signature"],
        certificate_chain=data["certificate_chain"],
        client_key=headers["idempotency_key"],
    )
    response_headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    body = commit_dict(result)
    # the section, registration and audit-log locks go now, not after the answer is
    # serialised: every other commit of the platform waits for the audit log's
    db.commit_now()
    return body, 201, response_headers


@bp.get(BIDS)
@bp.auth_required(token_auth)
@bp.input(PageQuery, location="query", arg_name="page")
@bp.output(page_schema(schemas.BidOut))
def list_bids(project_id: uuid.UUID, section_id: uuid.UUID, page: dict[str, Any]) -> Any:
    """Bids of the section: a bidder sees its own; center staff and supervisors see every
    bid's metadata (who bid is confidential before the opening); others get 403."""
    section = _section(project_id, section_id)
    result = services.section_bids_page(
        current_actor(), section, cursor=page["cursor"], limit=page["limit"]
    )
    return {"items": [bid_dict(b) for b in result.items], "next_cursor": result.next_cursor}


@bp.get(f"{BIDS}/status")
@bp.auth_required(token_auth)
@bp.output(schemas.StatusOut)
def bid_status(project_id: uuid.UUID, section_id: uuid.UUID) -> Any:
    section = _section(project_id, section_id)
    status = services.bid_status(_actor(), section)
    return {
        "section_id": section.id,
        "accepting": status.accepting,
        "bid_deadline": section.bid_deadline,
        "current": bid_dict(status.current) if status.current is not None else None,
        "bids": [bid_dict(b) for b in status.bids],
        "uploads": [upload_dict(u) for u in status.uploads],
    }


@bp.get(f"{BIDS}/<uuid:bid_id>")
@bp.auth_required(token_auth)
@bp.output(schemas.BidOut)
def get_bid(project_id: uuid.UUID, section_id: uuid.UUID, bid_id: uuid.UUID) -> Any:
    section = _section(project_id, section_id)
    return bid_dict(services.get_bid(current_actor(), section, bid_id))


@bp.post(f"{BIDS}/<uuid:bid_id>/withdraw")
@bp.auth_required(token_auth)
@bp.output(schemas.BidOut)
def withdraw_bid(project_id: uuid.UUID, section_id: uuid.UUID, bid_id: uuid.UUID) -> Any:
    """Withdraw the bid before the deadline (撤回)."""
    section = _section(project_id, section_id)
    bid = services.get_bid(_actor(), section, bid_id)
    body = bid_dict(services.withdraw_bid(_actor(), bid))
    db.commit_now()  # release the section's and the registration's locks (see commit_bid)
    return body


@bp.get(f"{BIDS}/<uuid:bid_id>/receipt")
@bp.auth_required(token_auth)
@bp.doc(description="The receipt file: canonical JSON as crypto.receipt writes it.")
@bp.output({}, content_type="application/json")
def get_receipt(project_id: uuid.UUID, section_id: uuid.UUID, bid_id: uuid.UUID) -> Any:
    section = _section(project_id, section_id)
    bid = services.get_bid(current_actor(), section, bid_id)
    return Response(
        canonical_json(bid.receipt),
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="receipt-{bid.id}.json"'},
    )


@bp.get(f"{BIDS}/<uuid:bid_id>/proof")
@bp.auth_required(token_auth)
@bp.input(schemas.ProofQuery, location="query", arg_name="query")
@bp.output(schemas.ProofOut)
def get_proof(
    project_id: uuid.UUID, section_id: uuid.UUID, bid_id: uuid.UUID, query: dict[str, Any]
) -> Any:
    """Inclusion proof of the acceptance event (default: in the receipt's tree head)."""
    section = _section(project_id, section_id)
    bid = services.get_bid(current_actor(), section, bid_id)
    return services.bid_inclusion_proof(current_actor(), bid, query["tree_size"]).to_dict()


@bp.get("/bids/mine")
@bp.auth_required(token_auth)
@bp.input(PageQuery, location="query", arg_name="page")
@bp.output(page_schema(schemas.BidOut))
def my_bids(page: dict[str, Any]) -> Any:
    """The caller's organisations' bids in every section, newest first."""
    result = services.my_bids_page(_actor(), cursor=page["cursor"], limit=page["limit"])
    return {"items": [bid_dict(b) for b in result.items], "next_cursor": result.next_cursor}

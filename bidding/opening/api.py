"""The opening API: ``/api/v1/sections/{id}/opening…``.

Views parse, load the section by id (404 when the caller may not see it), call one
service and serialise. A *recorded* refusal (wrong share, wrong data key) is committed
before the error response, so its trace survives.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from apiflask import APIBlueprint
from flask import Flask, Response, request
from flask_babel import gettext as _
from sqlalchemy import select

from bidding.core import db
from bidding.core.auth import current_actor, token_auth
from bidding.core.errors import BadRequest, DomainError, ErrorCode, NotFound
from bidding.core.roles import Actor
from bidding.opening import schemas, services
from bidding.opening.models import OpeningObjection, OpeningResult, ShareRelease
from bidding.projects.models import Section
from bidding.projects.services import can_view_section

bp = APIBlueprint("opening_api", __name__, url_prefix="/api/v1", tag="Opening")

OPENING = "/sections/<uuid:section_id>/opening"
T = TypeVar("T")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def _actor() -> Actor:
    actor = current_actor()
    assert actor is not None
    return actor


def load_section(section_id: uuid.UUID) -> Section:
    section = db.get_session().get(Section, section_id)
    if section is None or not can_view_section(current_actor(), section):
        raise NotFound(_("请求的资源不存在或您无权查看。"))
    return section


def call_recorded(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call a service; commit the trace of a recorded refusal before it becomes a response."""
    try:
        return fn(*args, **kwargs)
    except DomainError as err:
        if getattr(err, "recorded", False):
            db.get_session().commit()
        raise


def _share_out(row: ShareRelease) -> dict[str, Any]:
    session = row.session
    return {
        "index": row.share_index,
        "status": str(row.status),
        "method": row.method,
        "released_at": services._iso(row.released_at),
        "shares_released": session.shares_received,
        "k": session.k,
    }


@bp.get(OPENING)
@bp.output(schemas.OpeningOut)
def get_opening(section_id: uuid.UUID) -> dict[str, Any]:
    """The opening's state: public parts for everyone; sign-ins, shares, per-bid progress
    and objections for the parties to the opening."""
    return services.hall_state(current_actor(), load_section(section_id))


@bp.post(OPENING + "/sign-in")
@bp.auth_required(token_auth)
@bp.output(schemas.SignInOut)
def sign_in(section_id: uuid.UUID) -> dict[str, Any]:
    """Sign in to the opening hall (签到)."""
    return services.sign_in_view(services.sign_in(_actor(), load_section(section_id)))


@bp.post(OPENING + "/shares")
@bp.auth_required(token_auth)
@bp.input(schemas.ShareIn, arg_name="data")
@bp.output(schemas.ShareOut, status_code=201)
def release_share(section_id: uuid.UUID, data: dict[str, Any]) -> Any:
    """A custodian releases its share of the opening key (``share_invalid`` is recorded)."""
    section = load_section(section_id)
    if data.get("share") is not None:
        raw = json.dumps(data["share"]).encode()
        row = call_recorded(services.release_share, _actor(), section, raw)
    elif data.get("private_key_pem"):
        row = call_recorded(
            services.release_share,
            _actor(),
            section,
            private_key_pem=data["private_key_pem"].encode(),
            passphrase=data.get("passphrase"),
        )
    else:
        raise BadRequest(
            _("请提交解密后的密钥份额，或密钥文件及其口令。"), code=ErrorCode.VALIDATION_ERROR
        )
    return _share_out(row), 201


@bp.post(OPENING + "/self-open")
@bp.auth_required(token_auth)
@bp.input(schemas.SelfOpenIn, arg_name="data")
@bp.output(schemas.BidResultOut, status_code=202)
def self_open(section_id: uuid.UUID, data: dict[str, Any]) -> Any:
    """A bidder hands over its bid's data key after the quorum failed (自行解密)."""
    try:
        key = bytes.fromhex(data["data_key"])
    except ValueError:
        raise BadRequest(
            _("数据密钥须为 64 位十六进制。"), code=ErrorCode.VALIDATION_ERROR
        ) from None
    result = call_recorded(services.self_open, _actor(), load_section(section_id), key)
    return services.result_view(result), 202


@bp.get(OPENING + "/record")
@bp.output(schemas.RecordOut)
def get_record(section_id: uuid.UUID) -> Any:
    """The published opening record (开标记录), signed by the platform; everyone may read
    and verify it. ``?download=1`` returns the canonical JSON file."""
    signed = services.record_document(load_section(section_id))
    if request.args.get("download"):
        return Response(
            signed.to_json(),
            mimetype="application/json",
            headers={
                "Content-Disposition": f'attachment; filename="opening-record-{section_id}.json"'
            },
        )
    return signed.to_dict()


@bp.get(OPENING + "/objections")
@bp.output(schemas.ObjectionList)
def list_objections(section_id: uuid.UUID) -> dict[str, Any]:
    """Objections raised at the opening and their answers (parties to the opening)."""
    state = services.hall_state(current_actor(), load_section(section_id))
    return {"items": state.get("objections", [])}


@bp.post(OPENING + "/objections")
@bp.auth_required(token_auth)
@bp.input(schemas.ObjectionIn, arg_name="data")
@bp.output(schemas.ObjectionOut, status_code=201)
def raise_objection(section_id: uuid.UUID, data: dict[str, Any]) -> Any:
    """A bidder raises an objection at the opening (SSTL 44)."""
    row = services.raise_objection(_actor(), load_section(section_id), data["text"])
    return services.objection_view(row), 201


@bp.post(OPENING + "/objections/<uuid:objection_id>/answer")
@bp.auth_required(token_auth)
@bp.input(schemas.AnswerIn, arg_name="data")
@bp.output(schemas.ObjectionOut)
def answer_objection(
    section_id: uuid.UUID, objection_id: uuid.UUID, data: dict[str, Any]
) -> dict[str, Any]:
    """The tenderer, the agency or center staff answer an objection on the spot."""
    section = load_section(section_id)
    objection = db.get_session().get(OpeningObjection, objection_id)
    if objection is None or objection.session.section_id != section.id:
        raise NotFound(_("请求的资源不存在或您无权查看。"))
    return services.objection_view(services.answer_objection(_actor(), objection, data["answer"]))


@bp.get(OPENING + "/results/<uuid:bid_id>/document")
@bp.auth_required(token_auth)
@bp.output(schemas.LinkOut)
def document_link(section_id: uuid.UUID, bid_id: uuid.UUID) -> dict[str, Any]:
    """A short-lived link to a decrypted bid (center staff and supervisors, after the
    opening; the committee later)."""
    section = load_section(section_id)
    result = db.get_session().scalar(select(OpeningResult).where(OpeningResult.bid_id == bid_id))
    if result is None or result.session.section_id != section.id:
        raise NotFound(_("请求的资源不存在或您无权查看。"))
    url, expires = services.document_link(_actor(), section, result)
    return {"url": url, "expires_in": expires}

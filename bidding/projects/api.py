"""The projects API: ``/api/v1/projects``, ``/api/v1/projects/{id}/sections/{id}/…``,
``/api/v1/sections`` and ``/api/v1/announcements``.

Views parse (schemas), load by id with the caller's visibility (404 when the caller may
not see it), call one service — which checks the caller's rights on the object — and
serialise. Creating calls (project, section, publish) honour ``Idempotency-Key``; draft
edits need ``If-Match`` with the section's ``ETag``.
"""

from __future__ import annotations

import uuid
from typing import Any

from apiflask import APIBlueprint
from apiflask.fields import String
from flask import Flask, request
from flask_babel import gettext as _

from bidding.core import db
from bidding.core.auth import current_actor, register_permission, token_auth
from bidding.core.errors import DomainError, ErrorCode, NotFound
from bidding.core.idempotency import IdempotencyHeaders, idempotent
from bidding.core.pagination import PageQuery, page_schema
from bidding.core.roles import Actor
from bidding.projects import schemas, services
from bidding.projects.fairness.i18n import finding_text
from bidding.projects.models import (
    Clarification,
    DocumentKind,
    Objection,
    Project,
    ProjectKind,
    Registration,
    ReviewFinding,
    Section,
    SectionState,
    Subject,
    TenderDocument,
)

bp = APIBlueprint("projects_api", __name__, url_prefix="/api/v1", tag="Projects")

SECTION = "/projects/<uuid:project_id>/sections/<uuid:section_id>"
DOWNLOAD_SECONDS = 300


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


# Permissions other domains (and pages) can check with bidding.core.auth.can/authorize.
register_permission("section.view")(
    lambda actor, section: services.can_view_section(actor, section)
)
register_permission("section.manage")(
    lambda actor, section: services.can_manage(actor, section.project)
)


# --------------------------------------------------------------------------- helpers


def _actor() -> Actor:
    actor = current_actor()
    assert actor is not None  # guaranteed by auth_required
    return actor


def _section(project_id: uuid.UUID, section_id: uuid.UUID) -> Section:
    return services.get_section(current_actor(), project_id, section_id)


def _load(model: type[Any], object_id: uuid.UUID, section: Section) -> Any:
    obj = db.get_session().get(model, object_id)
    if obj is None or getattr(obj, "section_id", None) != section.id:
        raise NotFound(_("请求的资源不存在或您无权查看。"))
    return obj


def _org(org: Any) -> dict[str, Any] | None:
    return None if org is None else {"id": org.id, "name": org.name}


def project_dict(p: Project) -> dict[str, Any]:
    return {
        "id": p.id,
        "transaction_code": p.transaction_code,
        "code": p.code,
        "name": p.name,
        "kind": str(p.kind),
        "subject": str(p.subject),
        "tenderer": _org(p.tenderer),
        "agency": _org(p.agency),
        "center_id": p.center_id,
        "region_code": p.region_code,
        "amount": p.amount,
        "currency": "CNY",
        "funding_source": p.funding_source,
        "created_at": p.created_at,
    }


def section_dict(s: Section) -> dict[str, Any]:
    return {
        "id": s.id,
        "project_id": s.project_id,
        "serial": s.serial,
        "code": s.code,
        "name": s.name,
        "state": str(s.state),
        "paused": s.paused,
        "estimated_price": s.estimated_price,
        "maximum_price": s.maximum_price,
        "bid_deposit": s.bid_deposit,
        "currency": "CNY",
        "bid_validity_days": s.bid_validity_days,
        "evaluation_method": s.evaluation_method or {},
        "committee_size": s.committee_size,
        "committee_experts": s.committee_experts,
        "complex_project": s.complex_project,
        "custodian_threshold": s.custodian_threshold,
        "custodians": [
            {
                "user_id": c.user_id,
                "display_name": c.user.display_name,
                "role": c.role,
                "position": c.position,
                "key_submitted": c.public_key_pem is not None,
                "share_index": c.share_index,
                "share_commitment": c.share_commitment,
                "encrypted_share": c.encrypted_share,
            }
            for c in s.custodians
        ],
        "review_round": s.review_round,
        "documents_issued_at": s.documents_issued_at,
        "sale_start": s.sale_start,
        "sale_end": s.sale_end,
        "objection_cutoff": s.objection_cutoff,
        "bid_deadline": s.bid_deadline,
        "opening_public_key": s.opening_public_key,
        "opening_key_fingerprint": s.opening_key_fingerprint,
        "published_at": s.published_at,
        "closed_at": s.closed_at,
        "failure_reason": s.failure_reason,
        "cancel_reason": s.cancel_reason,
        "version": s.version,
        "etag": s.etag,
    }


def document_dict(d: TenderDocument) -> dict[str, Any]:
    return {
        "id": d.id,
        "section_id": d.section_id,
        "kind": str(d.kind),
        "filename": d.filename or "",
        "content_type": d.content_type,
        "size": d.size,
        "sha256": d.sha256,
        "uploaded_at": d.uploaded_at,
    }


def finding_dict(f: ReviewFinding) -> dict[str, Any]:
    """A finding with its rule texts in the request language (stored Chinese by default)."""
    return {
        "id": f.id,
        "document_id": f.document_id,
        "review_round": f.review_round,
        "rule_id": f.rule_id,
        "title": finding_text(f, "title"),
        "severity": f.severity,
        "clause": f.clause,
        "location": f.location,
        "legal_basis": finding_text(f, "legal_basis"),
        "suggestion": finding_text(f, "suggestion"),
        "status": str(f.status),
        "override_reason": f.override_reason,
        "overridden_by_id": f.overridden_by_id,
        "overridden_at": f.overridden_at,
    }


def clarification_dict(c: Clarification) -> dict[str, Any]:
    return {
        "id": c.id,
        "section_id": c.section_id,
        "text": c.text,
        "document_id": c.document_id,
        "affects_bids": c.affects_bids,
        "issued_at": c.issued_at,
        "previous_deadline": c.previous_deadline,
        "new_deadline": c.new_deadline,
        "deadline_moved": c.deadline_moved,
    }


def registration_dict(r: Registration) -> dict[str, Any]:
    return {
        "id": r.id,
        "section_id": r.section_id,
        "bidder": _org(r.bidder),
        "registered_at": r.registered_at,
    }


def objection_dict(o: Objection) -> dict[str, Any]:
    return {
        "id": o.id,
        "section_id": o.section_id,
        "bidder": _org(o.bidder),
        "text": o.text,
        "raised_at": o.raised_at,
        "answer_due_at": o.answer_due_at,
        "status": str(o.status),
        "answer": o.answer,
        "answered_at": o.answered_at,
    }


def _with_etag(section: Section, status: int = 200) -> tuple[dict[str, Any], int, dict[str, str]]:
    return section_dict(section), status, {"ETag": section.etag}


# --------------------------------------------------------------------------- projects


@bp.get("/projects")
@bp.input(PageQuery, location="query", arg_name="page")
@bp.output(page_schema(schemas.ProjectOut))
def list_projects(page: dict[str, Any]) -> dict[str, Any]:
    """Projects you may see (managers and center: theirs; everyone: those with a published
    section), newest first."""
    result = services.projects_page(current_actor(), cursor=page["cursor"], limit=page["limit"])
    return {"items": [project_dict(p) for p in result.items], "next_cursor": result.next_cursor}


@bp.post("/projects")
@bp.auth_required(token_auth)
@idempotent("projects.create")
@bp.input(IdempotencyHeaders, location="headers", arg_name="idem")
@bp.input(schemas.ProjectIn, arg_name="data")
@bp.output(schemas.ProjectOut, status_code=201)
def create_project(data: dict[str, Any], idem: dict[str, Any]) -> Any:
    """Register a project entering the center (进场登记); assigns its transaction code."""
    project = services.register_project(
        _actor(),
        name=data["name"],
        kind=ProjectKind(data["kind"]),
        subject=Subject(data["subject"]),
        tenderer_id=data["tenderer_id"],
        agency_id=data["agency_id"],
        center_id=data["center_id"],
        region_code=data["region_code"],
        amount=data["amount"],
        funding_source=data["funding_source"],
    )
    return project_dict(project), 201


@bp.get("/projects/<uuid:project_id>")
@bp.output(schemas.ProjectOut)
def get_project(project_id: uuid.UUID) -> Any:
    return project_dict(services.get_project(current_actor(), project_id))


# --------------------------------------------------------------------------- sections


@bp.get("/projects/<uuid:project_id>/sections")
@bp.input(PageQuery, location="query", arg_name="page")
@bp.output(page_schema(schemas.SectionOut))
def list_sections(project_id: uuid.UUID, page: dict[str, Any]) -> Any:
    services.get_project(current_actor(), project_id)
    result = services.sections_page(
        current_actor(), cursor=page["cursor"], limit=page["limit"], project_id=project_id
    )
    return {"items": [section_dict(s) for s in result.items], "next_cursor": result.next_cursor}


def _timeline(data: dict[str, Any]) -> dict[str, Any]:
    return {k: data[k] for k in services.TIMELINE_FIELDS if k in data}


def _custodians(items: list[dict[str, Any]] | None) -> list[services.CustodianSpec] | None:
    if items is None:
        return None
    from bidding.core.roles import Role

    return [services.CustodianSpec(user_id=i["user_id"], role=Role(i["role"])) for i in items]


@bp.post("/projects/<uuid:project_id>/sections")
@bp.auth_required(token_auth)
@idempotent("sections.create")
@bp.input(IdempotencyHeaders, location="headers", arg_name="idem")
@bp.input(schemas.SectionIn, arg_name="data")
@bp.output(schemas.SectionOut, status_code=201)
def create_section(project_id: uuid.UUID, data: dict[str, Any], idem: dict[str, Any]) -> Any:
    """Add a draft section (标段/包). A minimum price is refused (SSTL 27)."""
    project = services.get_project(current_actor(), project_id)
    section = services.create_section(
        _actor(),
        project,
        name=data["name"],
        estimated_price=data["estimated_price"],
        bid_deposit=data["bid_deposit"],
        maximum_price=data["maximum_price"],
        minimum_price=data["minimum_price"],
        bid_validity_days=data["bid_validity_days"],
        evaluation_method=data["evaluation_method"],
        committee_size=data["committee_size"],
        committee_experts=data["committee_experts"],
        complex_project=data["complex_project"],
        custodians=_custodians(data["custodians"]) or [],
        custodian_threshold=data["custodian_threshold"],
        timeline=_timeline(data),
    )
    return _with_etag(section, 201)


@bp.get("/sections")
@bp.input(schemas.SectionQuery, location="query", arg_name="query")
@bp.output(page_schema(schemas.SectionOut))
def list_all_sections(query: dict[str, Any]) -> Any:
    """Every section you may see, newest first (center staff: all of their center's)."""
    states = [SectionState(s) for s in query["state"]] if query["state"] else None
    result = services.sections_page(
        current_actor(),
        cursor=query["cursor"],
        limit=query["limit"],
        states=states,
        center_id=query["center_id"],
    )
    return {"items": [section_dict(s) for s in result.items], "next_cursor": result.next_cursor}


@bp.get("/announcements")
@bp.input(PageQuery, location="query", arg_name="page")
@bp.output(page_schema(schemas.SectionOut))
def list_announcements(page: dict[str, Any]) -> Any:
    """Public tender announcements (招标公告): published sections, latest first."""
    result = services.announcements_page(cursor=page["cursor"], limit=page["limit"])
    return {"items": [section_dict(s) for s in result.items], "next_cursor": result.next_cursor}


@bp.get(SECTION)
@bp.output(schemas.SectionOut, headers={"ETag": String(metadata={"description": "for If-Match"})})
def get_section(project_id: uuid.UUID, section_id: uuid.UUID) -> Any:
    return _with_etag(_section(project_id, section_id))


@bp.patch(SECTION)
@bp.auth_required(token_auth)
@bp.input(schemas.IfMatchHeader, location="headers", arg_name="headers")
@bp.input(schemas.SectionPatch, arg_name="data")
@bp.output(schemas.SectionOut)
def update_section(
    project_id: uuid.UUID, section_id: uuid.UUID, data: dict[str, Any], headers: dict[str, Any]
) -> Any:
    """Edit a draft. ``If-Match`` must carry the ETag you read (412 otherwise)."""
    section = _section(project_id, section_id)
    custodians = _custodians(data.pop("custodians", None))
    if not headers.get("if_match"):
        raise DomainError(
            _("修改草稿须在 If-Match 头中提供最近读取的 ETag。"),
            code=ErrorCode.PRECONDITION_FAILED,
            http_status=428,
        )
    section = services.update_section(
        _actor(), section, data, if_match=headers["if_match"], custodians=custodians
    )
    return _with_etag(section)


@bp.put(f"{SECTION}/custodian-key")
@bp.auth_required(token_auth)
@bp.input(schemas.CustodianKeyIn, arg_name="data")
@bp.output(schemas.SectionOut)
def put_custodian_key(project_id: uuid.UUID, section_id: uuid.UUID, data: dict[str, Any]) -> Any:
    """A custodian supplies its X25519 public key (PEM) for the opening key."""
    section = _section(project_id, section_id)
    services.set_custodian_key(_actor(), section, data["public_key_pem"])
    return _with_etag(section)


# --------------------------------------------------------------------------- documents


@bp.post(f"{SECTION}/documents")
@bp.auth_required(token_auth)
@bp.input(schemas.DocumentUpload, location="form_and_files", arg_name="data")
@bp.output(schemas.DocumentOut, status_code=201)
def upload_document(project_id: uuid.UUID, section_id: uuid.UUID, data: dict[str, Any]) -> Any:
    """Upload a tender document (multipart ``file``), streamed to storage with its SHA-256."""
    section = _section(project_id, section_id)
    upload = data["file"]
    document = services.upload_document(
        _actor(),
        section,
        upload.stream,
        filename=upload.filename or "",
        content_type=upload.mimetype or "application/octet-stream",
        kind=DocumentKind(data["kind"]),
        expected_sha256=data["sha256"],
    )
    return document_dict(document), 201


@bp.get(f"{SECTION}/documents")
@bp.output(schemas.DocumentList)
def list_documents(project_id: uuid.UUID, section_id: uuid.UUID) -> Any:
    section = _section(project_id, section_id)
    docs = services.list_documents(current_actor(), section)
    return {"items": [document_dict(d) for d in docs]}


@bp.get(f"{SECTION}/documents/<uuid:document_id>/download")
@bp.output(schemas.DownloadOut)
def download_document(project_id: uuid.UUID, section_id: uuid.UUID, document_id: uuid.UUID) -> Any:
    """A short-lived download link for the document."""
    section = _section(project_id, section_id)
    document = _load(TenderDocument, document_id, section)
    if document.removed_at is not None:
        raise NotFound(_("请求的资源不存在或您无权查看。"))
    url = services.document_download_url(current_actor(), document, DOWNLOAD_SECONDS)
    return {"url": url, "expires_in": DOWNLOAD_SECONDS, "sha256": document.sha256}


@bp.delete(f"{SECTION}/documents/<uuid:document_id>")
@bp.auth_required(token_auth)
@bp.output({}, status_code=204)
def remove_document(project_id: uuid.UUID, section_id: uuid.UUID, document_id: uuid.UUID) -> Any:
    section = _section(project_id, section_id)
    services.remove_document(_actor(), _load(TenderDocument, document_id, section))
    return "", 204


# --------------------------------------------------------------------------- review


@bp.post(f"{SECTION}/submit")
@bp.auth_required(token_auth)
@bp.output(schemas.ReviewOut)
def submit_for_review(project_id: uuid.UUID, section_id: uuid.UUID) -> Any:
    """Submit the draft to the fair-competition review; returns the findings."""
    section = _section(project_id, section_id)
    findings = services.submit_for_review(_actor(), section)
    return {"section": section_dict(section), "findings": [finding_dict(f) for f in findings]}


@bp.post(f"{SECTION}/withdraw")
@bp.auth_required(token_auth)
@bp.output(schemas.SectionOut)
def withdraw_from_review(project_id: uuid.UUID, section_id: uuid.UUID) -> Any:
    """Take the section back to draft to revise it."""
    section = services.withdraw_from_review(_actor(), _section(project_id, section_id))
    return _with_etag(section)


@bp.get(f"{SECTION}/findings")
@bp.output(schemas.FindingList)
def list_findings(project_id: uuid.UUID, section_id: uuid.UUID) -> Any:
    section = _section(project_id, section_id)
    all_rounds = request.args.get("all_rounds") in ("1", "true")
    findings = services.findings_of(current_actor(), section, all_rounds=all_rounds)
    return {"items": [finding_dict(f) for f in findings]}


@bp.post(f"{SECTION}/findings/<uuid:finding_id>/override")
@bp.auth_required(token_auth)
@bp.input(schemas.ReasonIn, arg_name="data")
@bp.output(schemas.FindingOut)
def override_finding(
    project_id: uuid.UUID, section_id: uuid.UUID, finding_id: uuid.UUID, data: dict[str, Any]
) -> Any:
    """Center staff let a flagged clause stand, with a written reason."""
    section = _section(project_id, section_id)
    finding = _load(ReviewFinding, finding_id, section)
    return finding_dict(services.override_finding(_actor(), finding, data["reason"]))


# --------------------------------------------------------------------------- publication


def _publication(section: Section) -> dict[str, Any]:
    ceremony = services.opening_ceremony(section)
    return {
        "section_id": section.id,
        "state": str(section.state),
        "ceremony_id": ceremony.ceremony_id,
        "k": ceremony.k,
        "n": ceremony.n,
        "opening_public_key": ceremony.public_key_bytes.hex(),
        "fingerprint": ceremony.fingerprint,
        "share_commitments": list(ceremony.share_commitments),
        "prepared_at": section.publication_prepared_at,
    }


@bp.post(f"{SECTION}/prepare-publication")
@bp.auth_required(token_auth)
@bp.output(schemas.PublicationOut)
def prepare_publication(project_id: uuid.UUID, section_id: uuid.UUID) -> Any:
    """Step 1: run the opening-key ceremony (idempotent); confirm the fingerprint, then publish."""
    section = services.prepare_publication(_actor(), _section(project_id, section_id))
    return _publication(section)


@bp.post(f"{SECTION}/publish")
@bp.auth_required(token_auth)
@idempotent("sections.publish")
@bp.input(IdempotencyHeaders, location="headers", arg_name="idem")
@bp.input(schemas.PublishIn, arg_name="data")
@bp.output(schemas.SectionOut)
def publish_section(
    project_id: uuid.UUID, section_id: uuid.UUID, data: dict[str, Any], idem: dict[str, Any]
) -> Any:
    """Step 2: publish the announcement (招标公告). A retry returns the published section."""
    section = _section(project_id, section_id)
    section = services.publish_section(_actor(), section, fingerprint=data["fingerprint"])
    return _with_etag(section)


@bp.post(f"{SECTION}/cancel")
@bp.auth_required(token_auth)
@bp.input(schemas.ReasonIn, arg_name="data")
@bp.output(schemas.SectionOut)
def cancel_section(project_id: uuid.UUID, section_id: uuid.UUID, data: dict[str, Any]) -> Any:
    """Terminate the procedure (终止招标) with a written reason."""
    section = services.cancel_section(_actor(), _section(project_id, section_id), data["reason"])
    return _with_etag(section)


# --------------------------------------------------------------------------- after publication


@bp.get(f"{SECTION}/clarifications")
@bp.output(schemas.ClarificationList)
def list_clarifications(project_id: uuid.UUID, section_id: uuid.UUID) -> Any:
    section = _section(project_id, section_id)
    return {"items": [clarification_dict(c) for c in section.clarifications]}


@bp.post(f"{SECTION}/clarifications")
@bp.auth_required(token_auth)
@bp.input(schemas.ClarificationIn, arg_name="data")
@bp.output(schemas.ClarificationOut, status_code=201)
def issue_clarification(project_id: uuid.UUID, section_id: uuid.UUID, data: dict[str, Any]) -> Any:
    """Issue a clarification or amendment; the deadline moves if fewer than 15 days remain."""
    section = _section(project_id, section_id)
    document = None
    if data["document_id"] is not None:
        document = _load(TenderDocument, data["document_id"], section)
    clarification = services.issue_clarification(
        _actor(),
        section,
        text=data["text"],
        affects_bids=data["affects_bids"],
        document=document,
        changes_subject=data["changes_subject"],
        changes_qualifications=data["changes_qualifications"],
    )
    return clarification_dict(clarification), 201


@bp.get(f"{SECTION}/registrations")
@bp.output(schemas.RegistrationList)
def list_registrations(project_id: uuid.UUID, section_id: uuid.UUID) -> Any:
    """Registrations: all for managers and the center, your own for a bidder."""
    section = _section(project_id, section_id)
    return {
        "items": [registration_dict(r) for r in services.registrations_of(current_actor(), section)]
    }


@bp.post(f"{SECTION}/registrations")
@bp.auth_required(token_auth)
@bp.input(schemas.RegistrationIn, arg_name="data")
@bp.output(schemas.RegistrationOut, status_code=201)
def register_bidder(project_id: uuid.UUID, section_id: uuid.UUID, data: dict[str, Any]) -> Any:
    """Register your organisation for the section (报名)."""
    section = _section(project_id, section_id)
    registration = services.register_bidder(_actor(), section, bidder_id=data["bidder_id"])
    return registration_dict(registration), 201


@bp.get(f"{SECTION}/objections")
@bp.output(schemas.ObjectionList)
def list_objections(project_id: uuid.UUID, section_id: uuid.UUID) -> Any:
    section = _section(project_id, section_id)
    return {"items": [objection_dict(o) for o in services.objections_of(current_actor(), section)]}


@bp.post(f"{SECTION}/objections")
@bp.auth_required(token_auth)
@bp.input(schemas.ObjectionIn, arg_name="data")
@bp.output(schemas.ObjectionOut, status_code=201)
def raise_objection(project_id: uuid.UUID, section_id: uuid.UUID, data: dict[str, Any]) -> Any:
    """Object to the tender documents (≥ 10 days before the deadline); pauses the procedure."""
    section = _section(project_id, section_id)
    objection = services.raise_objection(
        _actor(), section, data["text"], bidder_id=data["bidder_id"]
    )
    return objection_dict(objection), 201


@bp.post(f"{SECTION}/objections/<uuid:objection_id>/answer")
@bp.auth_required(token_auth)
@bp.input(schemas.AnswerIn, arg_name="data")
@bp.output(schemas.ObjectionOut)
def answer_objection(
    project_id: uuid.UUID, section_id: uuid.UUID, objection_id: uuid.UUID, data: dict[str, Any]
) -> Any:
    section = _section(project_id, section_id)
    objection = _load(Objection, objection_id, section)
    return objection_dict(services.answer_objection(_actor(), objection, data["answer"]))

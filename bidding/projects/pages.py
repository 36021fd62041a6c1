"""Projects pages (项目与标段页面): public announcements, section detail, and the forms of
agencies (create, upload, submit, publish, clarify), center staff (review findings, state
table, audit trail) and bidders (register, object).

Every form posts with a CSRF token; every action calls one service; refusals are shown
as a flash message on the section page.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from bidding.accounts.models import Organisation, OrganisationKind, User
from bidding.core import db
from bidding.core.auth import current_actor, require_login
from bidding.core.clock import SHANGHAI
from bidding.core.errors import DomainError, NotFound
from bidding.core.roles import CENTER_SIDE, Actor, Role
from bidding.projects import services
from bidding.projects.fairness.i18n import finding_text
from bidding.projects.models import (
    DocumentKind,
    Objection,
    ProjectKind,
    ReviewFinding,
    Section,
    SectionState,
    Subject,
)

bp = Blueprint("projects", __name__, template_folder="templates")

SECTION = "/projects/<uuid:project_id>/sections/<uuid:section_id>"

STATE_LABELS = {
    SectionState.DRAFT: _l("草稿"),
    SectionState.UNDER_REVIEW: _l("公平竞争审查中"),
    SectionState.PUBLISHED: _l("已发布"),
    SectionState.CLOSED: _l("已截标"),
    SectionState.OPENING: _l("开标中"),
    SectionState.OPENED: _l("已开标"),
    SectionState.EVALUATING: _l("评标中"),
    SectionState.EVALUATED: _l("评标结束"),
    SectionState.PUBLICITY: _l("候选人公示"),
    SectionState.AWARDED: _l("已定标"),
    SectionState.CONTRACTED: _l("已签约"),
    SectionState.ARCHIVED: _l("已归档"),
    SectionState.FAILED: _l("流标"),
    SectionState.CANCELLED: _l("已终止"),
}
KIND_LABELS = {ProjectKind.TENDERING: _l("招标投标"), ProjectKind.PROCUREMENT: _l("政府采购")}
SUBJECT_LABELS = {
    Subject.WORKS: _l("工程"),
    Subject.GOODS: _l("货物"),
    Subject.SERVICES: _l("服务"),
}


def init_app(app: Flask) -> None:
    from bidding.core.pages import add_home_card, add_nav_item

    app.register_blueprint(bp)
    add_nav_item("announcements", _l("招标公告"), "projects.announcements", order=10)
    add_nav_item(
        "sections",
        _l("标段"),
        "projects.sections",
        roles={*CENTER_SIDE, Role.AGENCY_STAFF, Role.TENDERER_REP},
        order=20,
    )
    add_home_card(
        "projects_entry",
        {Role.CENTER_ADMIN, Role.CENTER_STAFF},
        _l("标段状态一览"),
        _l("本中心全部标段的状态与见证记录。"),
        "projects.sections",
        order=10,
    )
    add_home_card(
        "projects",
        {Role.TENDERER_REP, Role.AGENCY_STAFF},
        _l("项目与标段"),
        _l("登记项目、编制标段、上传招标文件、发布公告。"),
        "projects.new_project",
        order=50,
    )
    add_home_card(
        "tenders_open",
        {Role.BIDDER_REP},
        _l("正在招标"),
        _l("浏览可参与的标段并报名。"),
        "projects.announcements",
        order=70,
    )


@bp.app_template_global()
def section_state_label(state: Any) -> str:
    return str(STATE_LABELS.get(SectionState(state), state))


@bp.app_template_global()
def project_kind_label(kind: Any) -> str:
    return str(KIND_LABELS.get(ProjectKind(kind), kind))


@bp.app_template_global()
def subject_label(subject: Any) -> str:
    return str(SUBJECT_LABELS.get(Subject(subject), subject))


def _actor() -> Actor:
    actor = current_actor()
    assert actor is not None  # require_login
    return actor


def _section(project_id: uuid.UUID, section_id: uuid.UUID) -> Section:
    return services.get_section(current_actor(), project_id, section_id)


def _back(section: Section) -> Response:
    return redirect(
        url_for("projects.section", project_id=section.project_id, section_id=section.id)
    )


def _act(section: Section, action: Callable[[], Any], done: str) -> Response:
    """Run one service call; flash its refusal (and roll back) or the success message."""
    try:
        action()
    except DomainError as err:
        db.get_session().rollback()
        flash(err.message, "danger")
        return _back(section)
    flash(done, "success")
    return _back(section)


def _parse_money(raw: str | None) -> Decimal | None:
    text = (raw or "").strip().replace(",", "")
    if not text:
        return None
    try:
        return Decimal(text).quantize(Decimal("0.01"))
    except InvalidOperation:
        raise DomainError(
            _("金额格式不正确：%(value)s", value=text), code="validation_error", http_status=422
        ) from None


def _parse_local(raw: str | None) -> datetime | None:
    """A ``datetime-local`` form value, read as Asia/Shanghai time."""
    text = (raw or "").strip()
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)
    except ValueError:
        raise DomainError(
            _("时间格式不正确：%(value)s", value=text), code="validation_error", http_status=422
        ) from None


# --------------------------------------------------------------------------- public


@bp.get("/announcements")
def announcements() -> Any:
    """招标公告: published sections, latest first (public)."""
    page = services.announcements_page(cursor=request.args.get("cursor"), limit=20)
    return render_template("projects/announcements.html", page=page)


@bp.get(SECTION)
def section(project_id: uuid.UUID, section_id: uuid.UUID) -> Any:
    actor = current_actor()
    s = _section(project_id, section_id)
    manager = services.can_manage(actor, s.project)
    center_side = actor is not None and actor.has_role_at(
        CENTER_SIDE, center_id=s.project.center_id
    )
    bidder_orgs = actor.organisations_with(Role.BIDDER_REP) if actor is not None else set()
    registration = next(
        (
            services.registration_of(s, org)
            for org in bidder_orgs
            if services.registration_of(s, org)
        ),
        None,
    )
    findings = services.findings_of(actor, s) if (manager or center_side) else []
    return render_template(
        "projects/section.html",
        section=s,
        project=s.project,
        documents=services.list_documents(actor, s),
        findings=findings,
        finding_text=finding_text,
        objections=services.objections_of(actor, s),
        manager=manager,
        center_side=center_side,
        can_override=actor is not None
        and actor.has_role_at((Role.CENTER_STAFF,), center_id=s.project.center_id),
        is_bidder=bool(bidder_orgs),
        registration=registration,
        custodian=next(
            (c for c in s.custodians if actor is not None and c.user_id == actor.id), None
        ),
        document_kinds=DocumentKind,
        states=SectionState,
    )


@bp.get(f"{SECTION}/documents/<uuid:document_id>")
def download(project_id: uuid.UUID, section_id: uuid.UUID, document_id: uuid.UUID) -> Any:
    s = _section(project_id, section_id)
    document = next((d for d in s.documents if d.id == document_id), None)
    if document is None:
        raise NotFound(_("请求的资源不存在或您无权查看。"))
    return redirect(services.document_download_url(current_actor(), document))


# --------------------------------------------------------------------------- lists


@bp.get("/sections")
@require_login
def sections() -> Any:
    """The state table: every section the user may see (center: all of the center's)."""
    wanted = [
        SectionState(v)
        for v in request.args.getlist("state")
        if v in SectionState.__members__.values()
    ]
    page = services.sections_page(
        current_actor(), cursor=request.args.get("cursor"), limit=50, states=wanted or None
    )
    return render_template("projects/sections.html", page=page, wanted=wanted, states=SectionState)


@bp.get(f"{SECTION}/audit")
@require_login
def audit(project_id: uuid.UUID, section_id: uuid.UUID) -> Any:
    s = _section(project_id, section_id)
    events = services.audit_trail(current_actor(), s)
    return render_template("projects/audit.html", section=s, events=events)


# --------------------------------------------------------------------------- agency


@bp.route("/projects/new", methods=["GET", "POST"])
@require_login
def new_project() -> Any:
    actor = _actor()
    s = db.get_session()
    my_orgs = [
        s.get(Organisation, o)
        for o in actor.organisations_with(Role.TENDERER_REP, Role.AGENCY_STAFF)
    ]
    tenderers = (
        [o for o in s.query(Organisation).filter_by(kind=OrganisationKind.TENDERER)]
        if any(o is not None and o.kind == OrganisationKind.AGENCY for o in my_orgs)
        else [o for o in my_orgs if o is not None and o.kind == OrganisationKind.TENDERER]
    )
    agencies = [o for o in my_orgs if o is not None and o.kind == OrganisationKind.AGENCY]
    if request.method == "GET":
        return render_template(
            "projects/project_new.html", tenderers=tenderers, agencies=agencies, form={}
        )
    form = request.form
    try:
        tenderer = s.get(Organisation, uuid.UUID(form.get("tenderer_id", "")))
        if tenderer is None:
            raise NotFound(_("招标人不存在。"))
        agency_raw = form.get("agency_id") or ""
        project = services.register_project(
            actor,
            name=form.get("name", ""),
            kind=ProjectKind(form.get("kind", "tendering")),
            subject=Subject(form.get("subject", "works")),
            tenderer_id=tenderer.id,
            agency_id=uuid.UUID(agency_raw) if agency_raw else None,
            center_id=tenderer.center_id or uuid.uuid4(),
            region_code=form.get("region_code", "").strip(),
            amount=_parse_money(form.get("amount")),
            funding_source=form.get("funding_source", ""),
        )
    except (DomainError, ValueError) as err:
        db.get_session().rollback()
        message = err.message if isinstance(err, DomainError) else _("请完整填写表单。")
        return (
            render_template(
                "projects/project_new.html",
                tenderers=tenderers,
                agencies=agencies,
                form=form,
                error=message,
            ),
            422,
        )
    flash(_("项目已登记，统一交易标识码：%(code)s", code=project.transaction_code), "success")
    return redirect(url_for("projects.project", project_id=project.id))


@bp.get("/projects/<uuid:project_id>")
@require_login
def project(project_id: uuid.UUID) -> Any:
    actor = _actor()
    p = services.get_project(actor, project_id)
    page = services.sections_page(actor, cursor=None, limit=100, project_id=p.id)
    candidates: dict[str, list[User]] = {}
    if services.can_manage(actor, p):
        s = db.get_session()
        from bidding.accounts.models import RoleGrant

        grants = s.query(RoleGrant).filter(
            (
                (RoleGrant.center_id == p.center_id)
                & RoleGrant.role.in_([Role.CENTER_STAFF, Role.SUPERVISOR])
            )
            | ((RoleGrant.organisation_id == p.agency_id) & (RoleGrant.role == Role.AGENCY_STAFF))
        )
        for g in grants:
            candidates.setdefault(g.role.value, []).append(g.user)
    return render_template(
        "projects/project.html",
        project=p,
        sections=page.items,
        manager=services.can_manage(actor, p),
        candidates=candidates,
    )


@bp.post("/projects/<uuid:project_id>/sections")
@require_login
def create_section(project_id: uuid.UUID) -> Any:
    actor = _actor()
    p = services.get_project(actor, project_id)
    form = request.form
    try:
        custodians = [
            services.CustodianSpec(uuid.UUID(raw.split(":", 1)[1]), Role(raw.split(":", 1)[0]))
            for raw in form.getlist("custodians")
        ]
        timeline = {
            name: _parse_local(form.get(name))
            for name in services.TIMELINE_FIELDS
            if form.get(name)
        }
        s = services.create_section(
            actor,
            p,
            name=form.get("name", ""),
            estimated_price=_parse_money(form.get("estimated_price")) or Decimal("0"),
            bid_deposit=_parse_money(form.get("bid_deposit")) or Decimal("0.00"),
            maximum_price=_parse_money(form.get("maximum_price")),
            bid_validity_days=int(form.get("bid_validity_days") or 90),
            committee_size=int(form.get("committee_size") or 5),
            committee_experts=int(form.get("committee_experts") or 4),
            custodians=custodians,
            custodian_threshold=int(form.get("custodian_threshold") or 2),
            timeline=timeline,
        )
    except (DomainError, ValueError) as err:
        db.get_session().rollback()
        flash(err.message if isinstance(err, DomainError) else _("请完整填写表单。"), "danger")
        return redirect(url_for("projects.project", project_id=project_id))
    flash(_("标段已创建：%(code)s", code=s.code), "success")
    return _back(s)


@bp.post(f"{SECTION}/documents")
@require_login
def upload(project_id: uuid.UUID, section_id: uuid.UUID) -> Any:
    s = _section(project_id, section_id)
    file = request.files.get("file")
    if file is None or not file.filename:
        flash(_("请选择要上传的文件。"), "danger")
        return _back(s)
    kind = DocumentKind(request.form.get("kind", DocumentKind.TENDER_DOCUMENTS.value))
    return _act(
        s,
        lambda: services.upload_document(
            _actor(),
            s,
            file.stream,
            filename=file.filename or "",
            content_type=file.mimetype or "application/octet-stream",
            kind=kind,
        ),
        _("文件已上传。"),
    )


@bp.post(f"{SECTION}/custodian-key")
@require_login
def custodian_key(project_id: uuid.UUID, section_id: uuid.UUID) -> Any:
    s = _section(project_id, section_id)
    pem = request.form.get("public_key_pem", "")
    return _act(s, lambda: services.set_custodian_key(_actor(), s, pem), _("公钥已提交。"))


@bp.post(f"{SECTION}/submit")
@require_login
def submit(project_id: uuid.UUID, section_id: uuid.UUID) -> Any:
    s = _section(project_id, section_id)
    return _act(s, lambda: services.submit_for_review(_actor(), s), _("已提交公平竞争审查。"))


@bp.post(f"{SECTION}/withdraw")
@require_login
def withdraw(project_id: uuid.UUID, section_id: uuid.UUID) -> Any:
    s = _section(project_id, section_id)
    return _act(s, lambda: services.withdraw_from_review(_actor(), s), _("已退回草稿。"))


@bp.post(f"{SECTION}/findings/<uuid:finding_id>/override")
@require_login
def override(project_id: uuid.UUID, section_id: uuid.UUID, finding_id: uuid.UUID) -> Any:
    s = _section(project_id, section_id)
    finding = db.get_session().get(ReviewFinding, finding_id)
    if finding is None or finding.section_id != s.id:
        raise NotFound(_("请求的资源不存在或您无权查看。"))
    reason = request.form.get("reason", "")
    return _act(
        s, lambda: services.override_finding(_actor(), finding, reason), _("已放行该审查意见。")
    )


@bp.post(f"{SECTION}/prepare")
@require_login
def prepare(project_id: uuid.UUID, section_id: uuid.UUID) -> Any:
    s = _section(project_id, section_id)
    return _act(
        s,
        lambda: services.prepare_publication(_actor(), s),
        _("开标密钥已生成，请核对公钥指纹后发布。"),
    )


@bp.post(f"{SECTION}/publish")
@require_login
def publish(project_id: uuid.UUID, section_id: uuid.UUID) -> Any:
    s = _section(project_id, section_id)
    fingerprint = request.form.get("fingerprint") or None
    return _act(
        s,
        lambda: services.publish_section(_actor(), s, fingerprint=fingerprint),
        _("招标公告已发布。"),
    )


@bp.post(f"{SECTION}/clarify")
@require_login
def clarify(project_id: uuid.UUID, section_id: uuid.UUID) -> Any:
    s = _section(project_id, section_id)
    text = request.form.get("text", "")
    affects = request.form.get("affects_bids") == "1"
    return _act(
        s,
        lambda: services.issue_clarification(_actor(), s, text=text, affects_bids=affects),
        _("澄清已发布，已通知全部报名投标人。"),
    )


@bp.post(f"{SECTION}/cancel")
@require_login
def cancel(project_id: uuid.UUID, section_id: uuid.UUID) -> Any:
    s = _section(project_id, section_id)
    reason = request.form.get("reason", "")
    return _act(s, lambda: services.cancel_section(_actor(), s, reason), _("已终止招标。"))


# --------------------------------------------------------------------------- bidders


@bp.post(f"{SECTION}/register")
@require_login
def register(project_id: uuid.UUID, section_id: uuid.UUID) -> Any:
    s = _section(project_id, section_id)
    return _act(s, lambda: services.register_bidder(_actor(), s), _("报名成功。"))


@bp.post(f"{SECTION}/objections")
@require_login
def object_(project_id: uuid.UUID, section_id: uuid.UUID) -> Any:
    s = _section(project_id, section_id)
    text = request.form.get("text", "")
    return _act(
        s,
        lambda: services.raise_objection(_actor(), s, text),
        _("异议已提交，招标人应在3日内答复。"),
    )


@bp.post(f"{SECTION}/objections/<uuid:objection_id>/answer")
@require_login
def answer(project_id: uuid.UUID, section_id: uuid.UUID, objection_id: uuid.UUID) -> Any:
    s = _section(project_id, section_id)
    objection = db.get_session().get(Objection, objection_id)
    if objection is None or objection.section_id != s.id:
        raise NotFound(_("请求的资源不存在或您无权查看。"))
    text = request.form.get("answer", "")
    return _act(s, lambda: services.answer_objection(_actor(), objection, text), _("异议已答复。"))

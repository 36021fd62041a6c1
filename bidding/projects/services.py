"""Projects and sections services (项目与标段业务): entry, drafting, fair-competition review,
publication with the opening-key ceremony, clarifications, objections, registration,
cancellation, and closing at the bid deadline.

Every function takes the acting party first (``None`` = the platform itself, e.g. the
sweep), checks its rule, changes state, records an audit event and flushes; it never
commits (the request wrapper, task or sweep owns the transaction). Refusals are
:class:`~bidding.core.errors.DomainError` subclasses with stable codes.

Who may do what (checked here, against the *object*):

* **managers** of a project — ``tenderer_rep`` of its tenderer, ``agency_staff`` of its
  agency — draft, submit, publish, clarify, answer objections and cancel;
* **center side** — ``center_staff``, ``supervisor``, ``center_admin`` of the project's
  center — see every section of their center; only ``center_staff`` may override a review
  finding;
* **bidders** — ``bidder_rep`` of a bidder organisation — see published sections,
  register, and object if registered;
* **the public** — published sections, their clarifications and documents.

Seam for the bids domain — the bid counter
------------------------------------------
At the bid deadline :func:`close_due_sections` moves a published section to ``closed`` and,
when fewer than :data:`~bidding.projects.models.MIN_BIDS_TO_OPEN` bids were received, on
to ``failed`` (流标). The bids table belongs to the bids domain, so the count comes from a
hook it installs at import time::

    from bidding.projects.services import set_bid_counter
    set_bid_counter(lambda section: <number of bids submitted for section>)

Until a counter is installed :func:`count_bids` raises :class:`BidCounterMissing` and the
sweep closes nothing (fail safe: a section never fails or proceeds to opening on a guessed
count); tests install their own counter.

"Paused" (暂停, SSTL 22): while an objection to the documents is unanswered the section
is not closed at the deadline (by the sweep or by :func:`close_section`); it stays
``published`` and is closed by the first sweep after the last objection is answered.
Clarifications (which may move the deadline) and registrations stay possible.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from flask_babel import gettext as _
from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from bidding.accounts.models import Organisation, OrganisationKind, TradingCenter, User
from bidding.core import db
from bidding.core.audit import record_event
from bidding.core.clock import now, to_local
from bidding.core.errors import (
    Conflict,
    DomainError,
    ErrorCode,
    Forbidden,
    NotFound,
    RuleViolation,
)
from bidding.core.pagination import Page, paginate
from bidding.core.roles import CENTER_SIDE, Actor, Role
from bidding.core.states import transition
from bidding.core.storage import get_storage, new_key
from bidding.projects.models import (
    MIN_BIDS_TO_OPEN,
    PUBLIC_STATES,
    Clarification,
    DocumentKind,
    FindingStatus,
    Objection,
    ObjectionStatus,
    Project,
    ProjectKind,
    Registration,
    ReviewFinding,
    Section,
    SectionCustodian,
    SectionState,
    Subject,
    TenderDocument,
)
from bidding.projects.rules import evaluation as rules_evaluation
from bidding.projects.rules import money as money_rules
from bidding.projects.rules import timeline as time_rules
from crypto.errors import CryptoError
from crypto.pki import load_public_key_pem
from crypto.threshold import OpeningKeyCeremony, generate_opening_key

__all__ = [
    "BidCounter",
    "BidCounterMissing",
    "answer_objection",
    "can_manage",
    "can_view_section",
    "cancel_section",
    "close_due_sections",
    "close_section",
    "count_bids",
    "create_section",
    "fail_section",
    "issue_clarification",
    "override_finding",
    "prepare_publication",
    "publish_section",
    "raise_objection",
    "register_bidder",
    "register_project",
    "remove_document",
    "set_bid_counter",
    "set_custodian_key",
    "submit_for_review",
    "update_section",
    "upload_document",
    "withdraw_from_review",
]

#: Largest tender document accepted (bytes).
MAX_DOCUMENT_SIZE = 200 * 1024 * 1024
#: Shortest written reason for overriding a finding or cancelling.
MIN_REASON_LENGTH = 5
#: Roles an opening-key custodian may act in.
CUSTODIAN_ROLES = (Role.CENTER_STAFF, Role.SUPERVISOR, Role.AGENCY_STAFF)
#: Section fields a draft edit may change.
EDITABLE_FIELDS = frozenset(
    {
        "name",
        "estimated_price",
        "maximum_price",
        "bid_deposit",
        "bid_validity_days",
        "evaluation_method",
        "committee_size",
        "committee_experts",
        "complex_project",
        "custodian_threshold",
        "documents_issued_at",
        "sale_start",
        "sale_end",
        "objection_cutoff",
        "bid_deadline",
    }
)
TIMELINE_FIELDS = (
    "documents_issued_at",
    "sale_start",
    "sale_end",
    "objection_cutoff",
    "bid_deadline",
)


def _session() -> Session:
    return db.get_session()


# =========================================================================== the bid counter

BidCounter = Callable[[Section], int]
_bid_counter: BidCounter | None = None


class BidCounterMissing(RuntimeError):
    """No bid counter is installed (the bids domain is not wired in)."""


def set_bid_counter(counter: BidCounter | None) -> BidCounter | None:
    """Install the function that counts a section's bids at the deadline; return the old one.

    The bids domain calls this once at import; tests install their own and restore it.
    """
    global _bid_counter
    previous, _bid_counter = _bid_counter, counter
    return previous


def count_bids(section: Section) -> int:
    """Bids received for ``section`` (through the installed counter)."""
    if _bid_counter is None:
        raise BidCounterMissing("no bid counter installed: wire in the bids domain")
    return _bid_counter(section)


# =========================================================================== access


def _is_manager(actor: Actor | None, project: Project) -> bool:
    if actor is None:
        return False
    if actor.has_role_at((Role.TENDERER_REP,), organisation_id=project.tenderer_id):
        return True
    return project.agency_id is not None and actor.has_role_at(
        (Role.AGENCY_STAFF,), organisation_id=project.agency_id
    )


def _is_center_side(actor: Actor | None, project: Project) -> bool:
    return actor is not None and actor.has_role_at(CENTER_SIDE, center_id=project.center_id)


def can_manage(actor: Actor | None, project: Project) -> bool:
    """Tenderer's representative or the agency's staff of ``project``."""
    return _is_manager(actor, project)


def can_view_project(actor: Actor | None, project: Project) -> bool:
    """Managers and the center side see a project; others only through public sections."""
    if _is_manager(actor, project) or _is_center_side(actor, project):
        return True
    return any(s.state in PUBLIC_STATES for s in project.sections)


def can_view_section(actor: Actor | None, section: Section) -> bool:
    """Published (and later) sections are public; drafts and sections under review only
    to the project's managers and its center."""
    if section.state in PUBLIC_STATES:
        return True
    return _is_manager(actor, section.project) or _is_center_side(actor, section.project)


def _require_manager(actor: Actor | None, project: Project) -> Actor:
    if actor is None or not _is_manager(actor, project):
        raise Forbidden(
            _("只有本项目的招标人代表或招标代理机构人员可以执行此操作。"),
            details={"project_id": str(project.id)},
        )
    return actor


def _require_visible(actor: Actor | None, section: Section) -> None:
    if not can_view_section(actor, section):
        raise NotFound(_("请求的资源不存在或您无权查看。"))


def _bidder_org(actor: Actor | None, bidder_id: uuid.UUID | None) -> uuid.UUID:
    """The bidder organisation ``actor`` acts for (its only one, or ``bidder_id``)."""
    orgs = actor.organisations_with(Role.BIDDER_REP) if actor is not None else set()
    if bidder_id is not None:
        if bidder_id not in orgs:
            raise Forbidden(
                _("您不是该投标单位的授权代表。"), details={"bidder_id": str(bidder_id)}
            )
        return bidder_id
    if len(orgs) != 1:
        raise Forbidden(
            _("只有投标单位的授权代表可以执行此操作；代表多个单位时请指明投标单位。"),
            details={"bidder_organisations": sorted(str(o) for o in orgs)},
        )
    return next(iter(orgs))


# =========================================================================== helpers


def _reason(text: str | None, what: str) -> str:
    value = (text or "").strip()
    if len(value) < MIN_REASON_LENGTH:
        raise RuleViolation(
            _("请填写%(what)s（不少于%(n)s个字）。", what=what, n=MIN_REASON_LENGTH),
            code=ErrorCode.REASON_REQUIRED,
            details={"min_length": MIN_REASON_LENGTH},
        )
    return value


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _audit_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _org(org_id: uuid.UUID, kind: OrganisationKind, label: str) -> Organisation:
    org = _session().get(Organisation, org_id)
    if org is None:
        raise NotFound(
            _("%(label)s不存在。", label=label), details={"organisation_id": str(org_id)}
        )
    if org.kind != kind:
        raise RuleViolation(
            _("%(name)s不是%(label)s。", name=org.name, label=label),
            code=ErrorCode.ORGANISATION_KIND_INVALID,
            details={"organisation_id": str(org_id), "kind": str(org.kind), "expected": str(kind)},
        )
    return org


def _lock(section: Section) -> Section:
    """Re-read ``section`` with a row lock (contended transitions)."""
    return db.lock_row(Section, section.id)


def _require_state(section: Section, *states: SectionState, code: str | None = None) -> None:
    if section.state not in states:
        raise Conflict(
            _("标段当前状态（%(state)s）下不能进行该操作。", state=str(section.state)),
            code=code or ErrorCode.INVALID_TRANSITION,
            details={"state": str(section.state), "expected": [str(s) for s in states]},
        )


# =========================================================================== projects


def _new_project_code(
    project_kind: ProjectKind, subject: Subject, region_code: str, at: datetime
) -> str:
    """The next free transaction code (统一交易标识码) for region, year, subject and kind."""
    from bidding.projects import codes

    s = _session()
    year = to_local(at).year
    prefix = (
        f"{region_code}-{year}-{codes.SUBJECT_LETTERS[subject]}{codes.KIND_LETTERS[project_kind]}-"
    )
    serial = 1 + (
        s.scalar(select(func.count(Project.id)).where(Project.transaction_code.startswith(prefix)))
        or 0
    )
    while True:
        code = codes.make_project_code(region_code, year, subject, project_kind, serial)
        if not s.scalar(select(func.count(Project.id)).where(Project.transaction_code == code)):
            return code
        serial += 1


def register_project(
    actor: Actor,
    *,
    name: str,
    kind: ProjectKind,
    subject: Subject,
    tenderer_id: uuid.UUID,
    center_id: uuid.UUID,
    region_code: str,
    agency_id: uuid.UUID | None = None,
    amount: Decimal | None = None,
    funding_source: str = "",
) -> Project:
    """Register a project entering the center (进场登记) and assign its lifelong codes.

    The actor is the tenderer's representative or staff of the named agency; the center
    must be the acting organisation's center. Refusals: ``forbidden``,
    ``organisation_kind_invalid``, ``center_mismatch``, ``invalid_region_code``,
    ``amount_invalid``, ``not_found``.
    """
    from bidding.accounts.creditcode import region_code_problem

    tenderer = _org(tenderer_id, OrganisationKind.TENDERER, _("招标人（采购人）"))
    agency = _org(agency_id, OrganisationKind.AGENCY, _("招标代理机构")) if agency_id else None
    acting: Organisation | None = None
    if actor.has_role_at((Role.TENDERER_REP,), organisation_id=tenderer.id):
        acting = tenderer
    elif agency is not None and actor.has_role_at((Role.AGENCY_STAFF,), organisation_id=agency.id):
        acting = agency
    if acting is None:
        raise Forbidden(
            _("只有招标人代表或其委托的招标代理机构人员可以登记项目。"),
            details={"tenderer_id": str(tenderer_id)},
        )
    center = _session().get(TradingCenter, center_id)
    if center is None:
        raise NotFound(_("交易中心不存在。"), details={"center_id": str(center_id)})
    if acting.center_id != center.id:
        raise RuleViolation(
            _("项目应在%(org)s所属的交易中心登记进场。", org=acting.name),
            code=ErrorCode.CENTER_MISMATCH,
            details={"center_id": str(center.id), "organisation_center_id": str(acting.center_id)},
        )
    problem = region_code_problem(region_code)
    if problem is not None:
        raise RuleViolation(
            _("行政区划代码无效：%(problem)s", problem=problem),
            code=ErrorCode.INVALID_REGION_CODE,
            details={"region_code": region_code},
        )
    if amount is not None and amount <= 0:
        raise RuleViolation(
            _("项目总投资或预算金额应大于零。"),
            code=ErrorCode.AMOUNT_INVALID,
            details={"amount": str(amount)},
        )
    clean_name = name.strip()
    if not clean_name:
        raise RuleViolation(_("请填写项目名称。"), code=ErrorCode.VALIDATION_ERROR)
    at = now()
    kind, subject = ProjectKind(kind), Subject(subject)
    transaction_code = _new_project_code(kind, subject, region_code, at)
    code = transaction_code  # sections extend the platform code (codes.make_section_code)
    project = Project(
        id=uuid.uuid4(),
        transaction_code=transaction_code,
        code=code,
        name=clean_name,
        kind=ProjectKind(kind),
        subject=Subject(subject),
        tenderer_id=tenderer.id,
        agency_id=agency.id if agency else None,
        center_id=center.id,
        region_code=region_code,
        amount=amount,
        funding_source=funding_source.strip(),
        created_by_id=actor.id,
        created_at=at,
    )
    _session().add(project)
    _session().flush()
    record_event(
        actor,
        "project.registered",
        "project",
        project.id,
        {
            "transaction_code": transaction_code,
            "code": code,
            "name": clean_name,
            "kind": str(project.kind),
            "subject": str(project.subject),
            "tenderer_id": str(tenderer.id),
            "agency_id": str(agency.id) if agency else None,
            "center_id": str(center.id),
            "amount": _money(amount),
        },
    )
    return project


# =========================================================================== sections


@dataclass(frozen=True)
class CustodianSpec:
    """A custodian named in a draft: the user and the role it acts in."""

    user_id: uuid.UUID
    role: Role


def _validate_money(project: Project, section: Section, minimum_price: Decimal | None) -> None:
    money_rules.validate_price_limits(
        section.maximum_price, minimum_price, section.estimated_price, kind=project.kind
    )
    money_rules.validate_deposit(
        project.kind, project.subject, section.bid_deposit, section.estimated_price
    )
    money_rules.validate_bid_validity(section.bid_validity_days)


def _dec(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise _method_format(where)
    try:
        result = Decimal(str(value))
    except ArithmeticError:
        raise _method_format(where) from None
    if not result.is_finite():
        raise _method_format(where)
    return result


def _method_format(where: str) -> RuleViolation:
    return RuleViolation(
        _("评标办法配置格式有误：%(where)s", where=where),
        code=ErrorCode.EVALUATION_METHOD_INVALID,
        details={"reason": "format", "field": where},
    )


def parse_evaluation_method(data: Mapping[str, Any]) -> rules_evaluation.EvaluationMethod:
    """The section's stored evaluation method JSON as a rules ``EvaluationMethod``.

    Format (decimals as strings or numbers)::

        {"kind": "comprehensive" | "lowest_evaluated_price",
         "criteria": [{"id", "name", "category": "price|technical|commercial|qualification",
                       "max_score", "min_score"?, "weight"?, "objective"?}],
         "price_formula"?: {"kind": "low_price_first" | "benchmark_deviation",
                            "k"?, "n_below"?, "n_above"?,
                            "trimming"?: [{"min_bids", "drop_highest"?, "drop_lowest"?}]},
         "sme"?: {"rate", "consortium_rate"?},
         "score_decimals"?: 2, "rounding"?: "half_up", "combination"?: "mean", "notes"?: ""}

    Malformed input raises ``evaluation_method_invalid`` with ``details["field"]``.
    """
    ev = rules_evaluation
    if not isinstance(data, Mapping):
        raise _method_format("$")
    try:
        criteria = []
        for i, c in enumerate(data.get("criteria") or []):
            where = f"criteria[{i}]"
            if not isinstance(c, Mapping):
                raise _method_format(where)
            criteria.append(
                ev.Criterion(
                    id=str(c["id"]),
                    name=str(c["name"]),
                    category=ev.CriterionCategory(c["category"]),
                    max_score=_dec(c["max_score"], f"{where}.max_score"),
                    min_score=_dec(c.get("min_score", 0), f"{where}.min_score"),
                    weight=None
                    if c.get("weight") is None
                    else _dec(c["weight"], f"{where}.weight"),
                    objective=bool(c.get("objective", False)),
                )
            )
        formula = None
        f = data.get("price_formula")
        if f is not None:
            if not isinstance(f, Mapping):
                raise _method_format("price_formula")
            trimming = tuple(
                ev.TrimRule(
                    min_bids=int(t["min_bids"]),
                    drop_highest=int(t.get("drop_highest", 0)),
                    drop_lowest=int(t.get("drop_lowest", 0)),
                )
                for t in (f.get("trimming") or [])
            )
            formula = ev.PriceFormula(
                kind=ev.PriceFormulaKind(f.get("kind", "low_price_first")),
                k=_dec(f.get("k", 0), "price_formula.k"),
                n_below=_dec(f.get("n_below", 0), "price_formula.n_below"),
                n_above=_dec(f.get("n_above", 0), "price_formula.n_above"),
                trimming=trimming,
            )
        sme = None
        m = data.get("sme")
        if m is not None:
            if not isinstance(m, Mapping):
                raise _method_format("sme")
            sme = ev.SmeDeduction(
                rate=_dec(m["rate"], "sme.rate"),
                consortium_rate=None
                if m.get("consortium_rate") is None
                else _dec(m["consortium_rate"], "sme.consortium_rate"),
            )
        decimals = data.get("score_decimals", 2)
        if isinstance(decimals, bool) or not isinstance(decimals, int):
            raise _method_format("score_decimals")
        return ev.EvaluationMethod(
            kind=ev.MethodKind(data["kind"]),
            criteria=tuple(criteria),
            price_formula=formula,
            sme=sme,
            score_decimals=decimals,
            rounding=ev.Rounding(data.get("rounding", "half_up")),
            combination=ev.Combination(data.get("combination", "mean")),
            notes=str(data.get("notes", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RuleViolation(
            _("评标办法配置格式有误：%(problem)s", problem=str(exc)),
            code=ErrorCode.EVALUATION_METHOD_INVALID,
            details={"reason": "format"},
        ) from None


def _check_custodian_roles(project: Project, roles: Sequence[Role]) -> None:
    """The custodians come from the center, the supervisor and (if any) the agency (DESIGN.md)."""
    needed = {Role.CENTER_STAFF, Role.SUPERVISOR}
    if project.agency_id is not None:
        needed.add(Role.AGENCY_STAFF)
    missing = needed - set(roles)
    if missing:
        raise RuleViolation(
            _("开标密钥保管人应包括交易中心工作人员、监督人员和招标代理机构人员各至少一人。"),
            code=ErrorCode.CUSTODIANS_INVALID,
            details={"reason": "roles", "missing": sorted(str(r) for r in missing)},
        )


def _validate_evaluation(project: Project, section: Section) -> None:
    from bidding.projects import rules

    if section.evaluation_method:
        method = parse_evaluation_method(section.evaluation_method)
        rules.validate_evaluation_method(project.kind, project.subject, method)
    rules.validate_committee(
        project.kind,
        section.estimated_price,
        section.complex_project,
        section.committee_size,
        section.committee_experts,
        section.committee_size - section.committee_experts,
    )


def _custodian_rows(
    project: Project, section: Section, specs: Sequence[CustodianSpec], threshold: int
) -> None:
    """Replace the draft's custodians by ``specs`` (checked: users, roles, k-of-n)."""
    from bidding.projects import rules

    s = _session()
    for i, spec in enumerate(specs, start=1):
        user = s.get(User, spec.user_id)
        if user is None:
            raise NotFound(_("开标密钥保管人不存在。"), details={"user_id": str(spec.user_id)})
        role = Role(spec.role)
        if role not in CUSTODIAN_ROLES:
            raise RuleViolation(
                _("开标密钥保管人只能是交易中心工作人员、监督人员或招标代理机构人员。"),
                code=ErrorCode.CUSTODIANS_INVALID,
                details={"user_id": str(spec.user_id), "role": str(role), "position": i},
            )
        scope_ok = any(
            g.role == role
            and (
                (role is Role.AGENCY_STAFF and g.organisation_id == project.agency_id)
                or (role is not Role.AGENCY_STAFF and g.center_id == project.center_id)
            )
            for g in user.grants
        )
        if not scope_ok:
            raise RuleViolation(
                _("%(name)s在本项目中不具有所选的保管人身份。", name=user.display_name),
                code=ErrorCode.CUSTODIANS_INVALID,
                details={"user_id": str(spec.user_id), "role": str(role), "position": i},
            )
    rules.validate_custodians(threshold, len(specs))
    _check_custodian_roles(project, [Role(spec.role) for spec in specs])
    if len({spec.user_id for spec in specs}) != len(specs):
        raise RuleViolation(
            _("同一人员不能重复担任开标密钥保管人。"), code=ErrorCode.CUSTODIANS_INVALID
        )
    section.custodians.clear()
    s.flush()
    for i, spec in enumerate(specs, start=1):
        section.custodians.append(
            SectionCustodian(user_id=spec.user_id, role=str(Role(spec.role)), position=i)
        )
    section.custodian_threshold = threshold


def create_section(
    actor: Actor,
    project: Project,
    *,
    name: str,
    estimated_price: Decimal,
    bid_deposit: Decimal,
    maximum_price: Decimal | None = None,
    minimum_price: Decimal | None = None,
    bid_validity_days: int = 90,
    evaluation_method: Mapping[str, Any] | None = None,
    committee_size: int = 5,
    committee_experts: int = 4,
    complex_project: bool = False,
    custodians: Sequence[CustodianSpec] = (),
    custodian_threshold: int = 2,
    timeline: Mapping[str, datetime | None] | None = None,
) -> Section:
    """Add a draft section (标段 / 包) to ``project``: code = project code + serial.

    Refusals: ``forbidden``, ``minimum_price_forbidden``, ``maximum_price_invalid``,
    ``deposit_over_cap``, ``amount_invalid``, ``bid_validity_invalid``,
    ``evaluation_method_invalid`` (and the method's own codes), ``committee_invalid``,
    ``custodians_invalid``.
    """
    from bidding.projects import codes

    _require_manager(actor, project)
    s = _session()
    serial = 1 + (
        s.scalar(select(func.max(Section.serial)).where(Section.project_id == project.id)) or 0
    )
    section = Section(
        id=uuid.uuid4(),
        project_id=project.id,
        serial=serial,
        code=codes.make_section_code(project.code, serial),
        name=name.strip(),
        estimated_price=estimated_price,
        maximum_price=maximum_price,
        bid_deposit=bid_deposit,
        bid_validity_days=bid_validity_days,
        evaluation_method=dict(evaluation_method or {}),
        committee_size=committee_size,
        committee_experts=committee_experts,
        complex_project=complex_project,
        custodian_threshold=custodian_threshold,
        created_by_id=actor.id,
        state=SectionState.DRAFT,
    )
    for field_name, value in (timeline or {}).items():
        if field_name not in TIMELINE_FIELDS:
            raise RuleViolation(
                _("未知的时间字段：%(name)s", name=field_name), code=ErrorCode.VALIDATION_ERROR
            )
        setattr(section, field_name, value)
    if not section.name:
        raise RuleViolation(_("请填写标段名称。"), code=ErrorCode.VALIDATION_ERROR)
    _validate_money(project, section, minimum_price)
    _validate_evaluation(project, section)
    section.project = project
    s.add(section)
    if custodians:
        _custodian_rows(project, section, custodians, custodian_threshold)
    s.flush()
    record_event(
        actor,
        "section.created",
        "section",
        section.id,
        {
            "project_id": str(project.id),
            "code": section.code,
            "name": section.name,
            "estimated_price": _money(section.estimated_price),
            "maximum_price": _money(section.maximum_price),
            "bid_deposit": _money(section.bid_deposit),
            "custodians": [str(c.user_id) for c in section.custodians],
            "custodian_threshold": section.custodian_threshold,
        },
    )
    return section


def _check_etag(section: Section, if_match: str | None) -> None:
    if if_match is None:
        return
    wanted = {tag.strip() for tag in if_match.split(",")}
    weak = {t[2:] if t.startswith("W/") else t for t in wanted}
    if "*" in wanted or section.etag in weak:
        return
    raise DomainError(
        _("标段已被他人修改，请刷新后在最新版本上重新编辑。"),
        code=ErrorCode.PRECONDITION_FAILED,
        http_status=412,
        details={"etag": section.etag},
    )


def update_section(
    actor: Actor,
    section: Section,
    changes: Mapping[str, Any],
    *,
    if_match: str | None = None,
    custodians: Sequence[CustodianSpec] | None = None,
) -> Section:
    """Edit a draft section. ``if_match`` (the ETag the editor saw) guards against
    overwriting someone else's edit (412 ``precondition_failed``).

    ``changes`` may hold any of :data:`EDITABLE_FIELDS`, plus ``minimum_price`` (always
    refused when not null). Refusals: ``forbidden``, ``section_not_editable``,
    ``precondition_failed``, ``validation_error`` (unknown field) and the rules' codes.
    """
    project = section.project
    _require_manager(actor, project)
    _require_state(section, SectionState.DRAFT, code=ErrorCode.SECTION_NOT_EDITABLE)
    _check_etag(section, if_match)
    minimum_price = changes.get("minimum_price")
    unknown = set(changes) - EDITABLE_FIELDS - {"minimum_price"}
    if unknown:
        raise RuleViolation(
            _("以下字段不可修改：%(names)s", names="、".join(sorted(unknown))),
            code=ErrorCode.VALIDATION_ERROR,
            details={"fields": sorted(unknown)},
        )
    keys = [k for k in changes if k in EDITABLE_FIELDS]
    previous = {k: getattr(section, k) for k in keys}
    before = {k: _audit_value(v) for k, v in previous.items()}
    try:
        for key in keys:
            value = changes[key]
            if key == "evaluation_method":
                value = dict(value or {})
            elif key == "name":
                value = str(value).strip()
                if not value:
                    raise RuleViolation(_("请填写标段名称。"), code=ErrorCode.VALIDATION_ERROR)
            setattr(section, key, value)
        _validate_money(project, section, minimum_price)
        _validate_evaluation(project, section)
        if custodians is not None:
            _custodian_rows(project, section, custodians, section.custodian_threshold)
        elif "custodian_threshold" in changes and section.custodians:
            from bidding.projects import rules

            rules.validate_custodians(section.custodian_threshold, len(section.custodians))
            _check_custodian_roles(project, [Role(c.role) for c in section.custodians])
    except DomainError:
        for key, value in previous.items():  # leave the draft as it was
            setattr(section, key, value)
        raise
    section.updated_at = now()
    _session().flush()
    after = {k: _audit_value(getattr(section, k)) for k in before}
    data: dict[str, Any] = {"before": before, "after": after, "version": section.version}
    if custodians is not None:
        data["custodians"] = [str(c.user_id) for c in section.custodians]
    record_event(actor, "section.updated", "section", section.id, data)
    return section


def set_custodian_key(actor: Actor, section: Section, public_key_pem: str) -> SectionCustodian:
    """A custodian supplies its X25519 public key (PEM) for the section's opening key.

    Refusals: ``not_a_custodian``, ``section_not_editable`` (after publication),
    ``custodian_key_invalid``.
    """
    custodian = next((c for c in section.custodians if c.user_id == actor.id), None)
    if custodian is None:
        raise Forbidden(_("您不是本标段的开标密钥保管人。"), code=ErrorCode.NOT_A_CUSTODIAN)
    _require_state(
        section, SectionState.DRAFT, SectionState.UNDER_REVIEW, code=ErrorCode.SECTION_NOT_EDITABLE
    )
    if section.opening_ceremony is not None:
        raise Conflict(
            _("开标密钥已生成，不能再更换保管人公钥。"), code=ErrorCode.SECTION_NOT_EDITABLE
        )
    pem = public_key_pem.strip()
    try:
        key = load_public_key_pem(pem.encode("ascii"))
    except (CryptoError, ValueError, UnicodeEncodeError):
        key = None
    if not isinstance(key, X25519PublicKey):
        raise RuleViolation(
            _("公钥格式无效：请提供 PEM 格式的 X25519 公钥。"),
            code=ErrorCode.CUSTODIAN_KEY_INVALID,
        )
    raw = key.public_bytes_raw()
    for other in section.custodians:
        if other is not custodian and other.public_key_pem:
            other_key = load_public_key_pem(other.public_key_pem.encode("ascii"))
            if isinstance(other_key, X25519PublicKey) and other_key.public_bytes_raw() == raw:
                raise RuleViolation(
                    _("该公钥已被其他保管人使用，每位保管人须使用自己的密钥。"),
                    code=ErrorCode.CUSTODIAN_KEY_INVALID,
                )
    custodian.public_key_pem = pem + "\n"
    custodian.key_submitted_at = now()
    _session().flush()
    record_event(
        actor,
        "section.custodian_key_submitted",
        "section",
        section.id,
        {"custodian_id": str(custodian.id), "public_key": raw.hex()},
    )
    return custodian


# =========================================================================== documents


def _check_document_type(filename: str, content_type: str) -> None:
    """Refuse what the fair-competition checker cannot read (``unsupported_document_type``)."""
    from bidding.projects.fairness.extract import detect_kind

    detect_kind(filename, content_type)


def upload_document(
    actor: Actor,
    section: Section,
    stream: IO[bytes] | Any,
    *,
    filename: str,
    content_type: str,
    length: int | None = None,
    kind: DocumentKind = DocumentKind.TENDER_DOCUMENTS,
    expected_sha256: str | None = None,
) -> TenderDocument:
    """Stream a tender document into the object store (SHA-256 computed on the way in).

    Tender documents only while the section is a draft; clarification and amendment
    documents while it is published. Refusals: ``forbidden``, ``section_not_editable``,
    ``unsupported_document_type``, and the storage codes (``upload_too_large``,
    ``upload_incomplete``, ``checksum_mismatch``, ``storage_unavailable``).
    """
    _require_manager(actor, section.project)
    kind = DocumentKind(kind)
    if kind is DocumentKind.TENDER_DOCUMENTS:
        _require_state(section, SectionState.DRAFT, code=ErrorCode.SECTION_NOT_EDITABLE)
    else:
        _require_state(section, SectionState.PUBLISHED, code=ErrorCode.SECTION_NOT_PUBLISHED)
    clean_name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()[:255]
    if not clean_name:
        raise RuleViolation(_("请提供文件名。"), code=ErrorCode.VALIDATION_ERROR)
    _check_document_type(clean_name, content_type)
    key = new_key("tender-documents")
    stored = get_storage().put(
        key,
        stream,
        length=length,
        content_type=content_type,
        expected_sha256=expected_sha256,
        max_size=MAX_DOCUMENT_SIZE,
    )
    document = TenderDocument(
        id=uuid.uuid4(), section_id=section.id, kind=kind, uploaded_by_id=actor.id
    )
    document.set_stored_object(stored, filename=clean_name)
    document.uploaded_at = now()
    _session().add(document)
    _session().flush()
    _session().expire(section, ["documents"])
    record_event(
        actor,
        "section.document_uploaded",
        "section",
        section.id,
        {
            "document_id": str(document.id),
            "kind": str(kind),
            "filename": clean_name,
            "size": document.size,
            "sha256": document.sha256,
            "content_type": document.content_type,
        },
    )
    return document


def remove_document(actor: Actor, document: TenderDocument) -> TenderDocument:
    """Take a tender document out of a draft (e.g. to replace a flagged version).

    The row and the stored object are kept (earlier findings and audit events name them).
    Refusals: ``forbidden``, ``section_not_editable``, ``not_found`` (already removed).
    """
    section = document.section
    _require_manager(actor, section.project)
    _require_state(section, SectionState.DRAFT, code=ErrorCode.SECTION_NOT_EDITABLE)
    if document.removed_at is not None:
        raise NotFound(_("该文件已删除。"))
    document.removed_at = now()
    _session().flush()
    _session().expire(section, ["documents"])
    record_event(
        actor,
        "section.document_removed",
        "section",
        section.id,
        {"document_id": str(document.id), "sha256": document.sha256},
    )
    return document


def list_documents(actor: Actor | None, section: Section) -> list[TenderDocument]:
    """The section's documents for whoever may see the section (published: everyone)."""
    _require_visible(actor, section)
    return list(
        _session().scalars(
            select(TenderDocument)
            .where(TenderDocument.section_id == section.id, TenderDocument.removed_at.is_(None))
            .order_by(TenderDocument.uploaded_at, TenderDocument.id)
        )
    )


def document_download_url(actor: Actor | None, document: TenderDocument, expires: int = 300) -> str:
    """A short-lived download link (the section must be visible to ``actor``)."""
    _require_visible(actor, document.section)
    return document.presigned_get_url(expires)


# =========================================================================== review


def submit_for_review(actor: Actor, section: Section) -> list[ReviewFinding]:
    """Submit a draft for the fair-competition review (公平竞争审查): draft → under_review.

    Runs the checker on every tender document (and amendment) and stores its findings as
    a new review round. Refusals: ``forbidden``, ``invalid_transition``,
    ``tender_documents_missing``, ``unsupported_document_type``, ``document_unreadable``.
    """
    from bidding.projects import fairness

    _require_manager(actor, section.project)
    _require_state(section, SectionState.DRAFT)
    documents = [
        d
        for d in section.documents
        if d.kind in (DocumentKind.TENDER_DOCUMENTS, DocumentKind.AMENDMENT)
    ]
    if not documents:
        raise RuleViolation(
            _("请先上传招标文件，再提交公平竞争审查。"), code=ErrorCode.TENDER_DOCUMENTS_MISSING
        )
    previous = transition(section, SectionState.UNDER_REVIEW)
    section.review_round += 1
    section.submitted_for_review_at = now()
    findings: list[ReviewFinding] = []
    s = _session()
    for document in documents:
        with document.open() as reader:
            results = fairness.review_file(
                reader,
                document.filename or "",
                document.content_type,
                procurement=section.project.kind is ProjectKind.PROCUREMENT,
                works=section.project.subject is Subject.WORKS,
            )
        for result in results:
            finding = ReviewFinding(
                id=uuid.uuid4(),
                section_id=section.id,
                document_id=document.id,
                review_round=section.review_round,
                rule_id=result.rule_id,
                title=result.title[:200],
                severity=str(result.severity),
                clause=result.text,
                location=result.location[:255],
                legal_basis=result.legal_basis[:500],
                suggestion=result.suggestion,
                status=FindingStatus.OPEN,
                created_at=now(),
            )
            s.add(finding)
            findings.append(finding)
    s.flush()
    s.expire(section, ["findings"])
    record_event(
        actor,
        "section.submitted_for_review",
        "section",
        section.id,
        {
            "from": str(previous),
            "to": str(section.state),
            "review_round": section.review_round,
            "documents": [str(d.id) for d in documents],
            "findings": [{"id": str(f.id), "rule_id": f.rule_id} for f in findings],
        },
    )
    return findings


def withdraw_from_review(actor: Actor, section: Section) -> Section:
    """Take a section under review back to draft to revise it (退回修改).

    Any prepared opening key is discarded (custodians may change). Refusals:
    ``forbidden``, ``invalid_transition``.
    """
    _require_manager(actor, section.project)
    previous = transition(section, SectionState.DRAFT)
    _discard_ceremony(section)
    _session().flush()
    record_event(
        actor,
        "section.withdrawn_from_review",
        "section",
        section.id,
        {"from": str(previous), "to": str(section.state)},
    )
    return section


def override_finding(actor: Actor, finding: ReviewFinding, reason: str) -> ReviewFinding:
    """The center lets a flagged clause stand, with a written reason (audited).

    Refusals: ``forbidden`` (only center staff of the project's center),
    ``finding_not_open``, ``override_reason_required``, ``invalid_transition`` (the section
    is no longer under review).
    """
    section = finding.section
    if not actor.has_role_at((Role.CENTER_STAFF,), center_id=section.project.center_id):
        raise Forbidden(_("只有本交易中心的工作人员可以对审查意见作出处理。"))
    _require_state(section, SectionState.UNDER_REVIEW)
    if finding.status is not FindingStatus.OPEN or finding.review_round != section.review_round:
        raise Conflict(
            _("该审查意见已处理或已失效。"),
            code=ErrorCode.FINDING_NOT_OPEN,
            details={"status": str(finding.status)},
        )
    text = (reason or "").strip()
    if len(text) < MIN_REASON_LENGTH:
        raise RuleViolation(
            _("放行审查意见须书面说明理由（不少于%(n)s个字）。", n=MIN_REASON_LENGTH),
            code=ErrorCode.OVERRIDE_REASON_REQUIRED,
            details={"min_length": MIN_REASON_LENGTH},
        )
    finding.status = FindingStatus.OVERRIDDEN
    finding.override_reason = text
    finding.overridden_by_id = actor.id
    finding.overridden_at = now()
    _session().flush()
    record_event(
        actor,
        "review_finding.overridden",
        "section",
        section.id,
        {
            "finding_id": str(finding.id),
            "rule_id": finding.rule_id,
            "clause": finding.clause[:500],
            "reason": text,
        },
    )
    return finding


# =========================================================================== publication


def _timeline_of(section: Section) -> time_rules.Timeline:
    missing = [
        f
        for f in ("documents_issued_at", "sale_start", "sale_end", "bid_deadline")
        if getattr(section, f) is None
    ]
    if missing:
        raise RuleViolation(
            _("请先填写完整的时间安排：%(names)s", names="、".join(missing)),
            code=ErrorCode.TIMELINE_INVALID,
            details={"missing": missing},
        )
    assert section.documents_issued_at is not None and section.sale_start is not None
    assert section.sale_end is not None and section.bid_deadline is not None
    return time_rules.Timeline(
        documents_issued_at=section.documents_issued_at,
        sale_start=section.sale_start,
        sale_end=section.sale_end,
        bid_deadline=section.bid_deadline,
        objection_cutoff=section.objection_cutoff,
    )


def _check_publishable(section: Section, at: datetime) -> None:
    project = section.project
    open_findings = section.open_findings
    if open_findings:
        raise RuleViolation(
            _("尚有%(n)s条公平竞争审查意见未处理，处理完毕前不得发布。", n=len(open_findings)),
            code=ErrorCode.REVIEW_FINDINGS_OPEN,
            details={"findings": [str(f.id) for f in open_findings]},
        )
    if section.documents_issued_at is not None and section.documents_issued_at < at:
        # documents cannot have been issued before the announcement: they are issued now
        section.documents_issued_at = at
        if section.sale_start is not None and section.sale_start < at:
            section.sale_start = at
    time_rules.validate_timeline(project.kind, _timeline_of(section))
    _validate_money(project, section, None)
    _validate_evaluation(project, section)
    if not section.custodians:
        raise RuleViolation(_("请先指定开标密钥保管人。"), code=ErrorCode.CUSTODIANS_INVALID)
    missing = [c for c in section.custodians if not c.public_key_pem]
    if missing:
        raise RuleViolation(
            _("尚有%(n)s位开标密钥保管人未提交公钥。", n=len(missing)),
            code=ErrorCode.CUSTODIAN_KEY_MISSING,
            details={"custodians": [str(c.user_id) for c in missing]},
        )


def _discard_ceremony(section: Section) -> None:
    section.opening_ceremony = None
    section.opening_public_key = None
    section.opening_key_fingerprint = None
    section.publication_prepared_at = None
    for custodian in section.custodians:
        custodian.share_index = None
        custodian.encrypted_share = None
        custodian.share_commitment = None


def prepare_publication(actor: Actor, section: Section) -> Section:
    """Step 1 of publishing: check everything and run the opening-key ceremony.

    Makes the X25519 opening key, splits it k-of-n to the custodians' public keys
    (:func:`crypto.threshold.generate_opening_key`), and stores only public material: the
    public key, its fingerprint, each custodian's sealed share and the share commitments.
    Idempotent: a section already prepared (or published) is returned unchanged, so a
    retried call never makes a second key. Refusals: ``forbidden``, ``invalid_transition``,
    ``review_findings_open``, the timeline/money/evaluation rules' codes,
    ``custodians_invalid``, ``custodian_key_missing``.
    """
    _require_manager(actor, section.project)
    section = _lock(section)
    if section.opening_ceremony is not None and section.state in (
        SectionState.UNDER_REVIEW,
        SectionState.PUBLISHED,
    ):
        return section
    _require_state(section, SectionState.UNDER_REVIEW)
    at = now()
    _check_publishable(section, at)
    custodians = list(section.custodians)
    keys: list[X25519PublicKey] = []
    for c in custodians:
        assert c.public_key_pem is not None
        key = load_public_key_pem(c.public_key_pem.encode("ascii"))
        assert isinstance(key, X25519PublicKey)
        keys.append(key)
    ceremony_id = f"sunbid:section:{section.id}:round:{section.review_round}"
    try:
        ceremony = generate_opening_key(
            section.custodian_threshold, len(keys), keys, ceremony_id=ceremony_id
        )
    except CryptoError as exc:
        raise RuleViolation(
            _("开标密钥生成失败：%(message)s", message=exc.message),
            code=ErrorCode.CUSTODIANS_INVALID,
            details={"crypto_code": exc.code},
        ) from exc
    _store_ceremony(section, ceremony)
    section.publication_prepared_at = at
    _session().flush()
    record_event(
        actor,
        "section.publication_prepared",
        "section",
        section.id,
        {
            "ceremony_id": ceremony.ceremony_id,
            "k": ceremony.k,
            "n": ceremony.n,
            "opening_public_key": ceremony.public_key_bytes.hex(),
            "fingerprint": ceremony.fingerprint,
            "share_commitments": list(ceremony.share_commitments),
            "custodians": [str(c.user_id) for c in custodians],
        },
    )
    return section


def _store_ceremony(section: Section, ceremony: OpeningKeyCeremony) -> None:
    section.opening_ceremony = ceremony.to_dict()
    section.opening_public_key = ceremony.public_key_bytes.hex()
    section.opening_key_fingerprint = ceremony.fingerprint
    for custodian, share, commitment in zip(
        section.custodians, ceremony.encrypted_shares, ceremony.share_commitments, strict=True
    ):
        custodian.share_index = share.index
        custodian.encrypted_share = share.to_dict()
        custodian.share_commitment = commitment


def opening_ceremony(section: Section) -> OpeningKeyCeremony:
    """The section's published ceremony record (for the opening)."""
    if section.opening_ceremony is None:
        raise Conflict(_("该标段尚未生成开标密钥。"), code=ErrorCode.PUBLICATION_NOT_PREPARED)
    return OpeningKeyCeremony.from_dict(section.opening_ceremony)


def publish_section(actor: Actor, section: Section, *, fingerprint: str | None = None) -> Section:
    """Step 2 of publishing (发布招标公告): under_review → published.

    Needs a prepared opening key (``fingerprint``, when given, must be the one the
    publisher saw: 412 ``precondition_failed`` otherwise). A retry on a section already
    published with that key returns it unchanged. Rechecks the review findings and the
    timeline against the current time. Refusals: ``forbidden``, ``invalid_transition``,
    ``publication_not_prepared``, ``precondition_failed``, ``review_findings_open`` and the
    timeline codes.
    """
    _require_manager(actor, section.project)
    section = _lock(section)
    if fingerprint is not None and section.opening_key_fingerprint not in (None, fingerprint):
        raise DomainError(
            _("开标公钥指纹与发布确认的不一致，请刷新后重新确认。"),
            code=ErrorCode.PRECONDITION_FAILED,
            http_status=412,
            details={"fingerprint": section.opening_key_fingerprint},
        )
    if section.state is SectionState.PUBLISHED and section.opening_key_fingerprint is not None:
        return section  # a retried publish: nothing to do
    _require_state(section, SectionState.UNDER_REVIEW)
    if section.opening_ceremony is None:
        raise Conflict(
            _("请先生成开标密钥（发布准备），再发布招标公告。"),
            code=ErrorCode.PUBLICATION_NOT_PREPARED,
        )
    at = now()
    _check_publishable(section, at)
    assert section.bid_deadline is not None
    if section.objection_cutoff is None and section.project.kind is ProjectKind.TENDERING:
        section.objection_cutoff = time_rules.statutory_objection_cutoff(section.bid_deadline)
    previous = transition(section, SectionState.PUBLISHED)
    section.published_at = at
    section.published_by_id = actor.id
    _session().flush()
    record_event(
        actor,
        "section.published",
        "section",
        section.id,
        {
            "from": str(previous),
            "to": str(section.state),
            "fingerprint": section.opening_key_fingerprint,
            "documents_issued_at": _iso(section.documents_issued_at),
            "bid_deadline": _iso(section.bid_deadline),
            "documents": [
                {"id": str(d.id), "sha256": d.sha256}
                for d in section.documents
                if d.kind is DocumentKind.TENDER_DOCUMENTS
            ],
        },
    )
    return section


# =========================================================================== after publication


def issue_clarification(
    actor: Actor,
    section: Section,
    *,
    text: str,
    affects_bids: bool = True,
    document: TenderDocument | None = None,
    changes_subject: bool = False,
    changes_qualifications: bool = False,
) -> Clarification:
    """Issue a clarification or amendment (澄清 / 修改) to every registered bidder.

    If it may affect bids and fewer than 15 days remain before the deadline, the deadline
    moves so 15 remain (ZTBF 23, SSTL 21, L87 27); old and new deadlines are recorded.
    Refusals: ``forbidden``, ``section_not_published``, ``bid_deadline_passed``,
    ``amendment_changes_subject`` (procurement), ``validation_error`` (empty text or a
    document of another section).
    """
    _require_manager(actor, section.project)
    section = _lock(section)
    _require_state(section, SectionState.PUBLISHED, code=ErrorCode.SECTION_NOT_PUBLISHED)
    at = now()
    assert section.bid_deadline is not None
    if at >= section.bid_deadline:
        raise RuleViolation(
            _("投标截止时间已过，不能再发出澄清或修改。"), code=ErrorCode.BID_DEADLINE_PASSED
        )
    body = (text or "").strip()
    if not body:
        raise RuleViolation(_("请填写澄清或修改的内容。"), code=ErrorCode.VALIDATION_ERROR)
    if document is not None and document.section_id != section.id:
        raise RuleViolation(_("所附文件不属于本标段。"), code=ErrorCode.VALIDATION_ERROR)
    time_rules.validate_amendment(
        section.project.kind,
        changes_subject=changes_subject,
        changes_qualifications=changes_qualifications,
    )
    previous = section.bid_deadline
    new = time_rules.deadline_after_amendment(previous, at) if affects_bids else previous
    clarification = Clarification(
        id=uuid.uuid4(),
        section_id=section.id,
        text=body,
        document_id=document.id if document is not None else None,
        affects_bids=affects_bids,
        issued_at=at,
        issued_by_id=actor.id,
        previous_deadline=previous,
        new_deadline=new,
    )
    _session().add(clarification)
    if new != previous:
        section.bid_deadline = new
        if section.project.kind is ProjectKind.TENDERING:
            section.objection_cutoff = time_rules.statutory_objection_cutoff(new)
    _session().flush()
    recipients = [str(r.bidder_id) for r in section.registrations]
    record_event(
        actor,
        "section.clarification_issued",
        "section",
        section.id,
        {
            "clarification_id": str(clarification.id),
            "affects_bids": affects_bids,
            "previous_deadline": _iso(previous),
            "new_deadline": _iso(new),
            "deadline_moved": new != previous,
            "document_id": str(document.id) if document is not None else None,
            "recipients": recipients,
        },
    )
    return clarification


def register_bidder(
    actor: Actor, section: Section, *, bidder_id: uuid.UUID | None = None
) -> Registration:
    """A bidder registers for a published section (报名) before the bid deadline.

    Refusals: ``forbidden`` (not a bidder's representative), ``section_not_published``,
    ``bid_deadline_passed``, ``already_registered``.
    """
    org_id = _bidder_org(actor, bidder_id)
    _require_visible(actor, section)
    _require_state(section, SectionState.PUBLISHED, code=ErrorCode.SECTION_NOT_PUBLISHED)
    at = now()
    assert section.bid_deadline is not None
    if at >= section.bid_deadline:
        raise RuleViolation(_("投标截止时间已过，不能再报名。"), code=ErrorCode.BID_DEADLINE_PASSED)
    s = _session()
    exists = s.scalar(
        select(func.count(Registration.id)).where(
            Registration.section_id == section.id, Registration.bidder_id == org_id
        )
    )
    if exists:
        raise Conflict(_("贵单位已报名本标段。"), code=ErrorCode.ALREADY_REGISTERED)
    registration = Registration(
        id=uuid.uuid4(),
        section_id=section.id,
        bidder_id=org_id,
        registered_at=at,
        registered_by_id=actor.id,
    )
    s.add(registration)
    s.flush()
    record_event(
        actor,
        "section.bidder_registered",
        "section",
        section.id,
        {"registration_id": str(registration.id), "bidder_id": str(org_id)},
    )
    return registration


def registration_of(section: Section, bidder_id: uuid.UUID) -> Registration | None:
    return (
        _session()
        .scalars(
            select(Registration).where(
                Registration.section_id == section.id, Registration.bidder_id == bidder_id
            )
        )
        .first()
    )


def raise_objection(
    actor: Actor, section: Section, text: str, *, bidder_id: uuid.UUID | None = None
) -> Objection:
    """A registered bidder objects to the tender documents (SSTL 22), ≥ 10 days before
    the deadline. The procedure is paused until it is answered.

    Refusals: ``forbidden``, ``section_not_published``, ``not_registered``,
    ``objection_too_late``, ``validation_error`` (empty text).
    """
    org_id = _bidder_org(actor, bidder_id)
    _require_visible(actor, section)
    _require_state(section, SectionState.PUBLISHED, code=ErrorCode.SECTION_NOT_PUBLISHED)
    if registration_of(section, org_id) is None:
        raise Forbidden(
            _("只有已报名本标段的投标人可以对招标文件提出异议。"), code=ErrorCode.NOT_REGISTERED
        )
    body = (text or "").strip()
    if not body:
        raise RuleViolation(_("请填写异议内容。"), code=ErrorCode.VALIDATION_ERROR)
    at = now()
    assert section.bid_deadline is not None
    time_rules.validate_objection(at, section.bid_deadline)
    objection = Objection(
        id=uuid.uuid4(),
        section_id=section.id,
        bidder_id=org_id,
        raised_by_id=actor.id,
        text=body,
        raised_at=at,
        answer_due_at=time_rules.objection_answer_due(at),
        status=ObjectionStatus.OPEN,
    )
    _session().add(objection)
    _session().flush()
    _session().expire(section, ["objections"])
    record_event(
        actor,
        "section.objection_raised",
        "section",
        section.id,
        {
            "objection_id": str(objection.id),
            "bidder_id": str(org_id),
            "answer_due_at": _iso(objection.answer_due_at),
        },
    )
    return objection


def answer_objection(actor: Actor, objection: Objection, answer: str) -> Objection:
    """The tenderer or its agency answers an objection (within 3 days, SSTL 22).

    Refusals: ``forbidden``, ``objection_already_answered``, ``validation_error``.
    """
    section = objection.section
    _require_manager(actor, section.project)
    if objection.status is not ObjectionStatus.OPEN:
        raise Conflict(_("该异议已答复。"), code=ErrorCode.OBJECTION_ALREADY_ANSWERED)
    body = (answer or "").strip()
    if not body:
        raise RuleViolation(_("请填写答复内容。"), code=ErrorCode.VALIDATION_ERROR)
    at = now()
    objection.answer = body
    objection.answered_at = at
    objection.answered_by_id = actor.id
    objection.status = ObjectionStatus.ANSWERED
    _session().flush()
    record_event(
        actor,
        "section.objection_answered",
        "section",
        section.id,
        {
            "objection_id": str(objection.id),
            "late": at > objection.answer_due_at,
            "still_paused": section.paused,
        },
    )
    return objection


def cancel_section(actor: Actor, section: Section, reason: str) -> Section:
    """Terminate the procedure for a section (终止招标) with a written reason.

    Refusals: ``forbidden``, ``reason_required``, ``invalid_transition`` (already awarded,
    failed, cancelled or archived).
    """
    _require_manager(actor, section.project)
    text = _reason(reason, _("终止理由"))
    section = _lock(section)
    previous = transition(section, SectionState.CANCELLED)
    section.cancel_reason = text
    section.cancelled_at = now()
    _session().flush()
    record_event(
        actor,
        "section.cancelled",
        "section",
        section.id,
        {"from": str(previous), "to": str(section.state), "reason": text},
    )
    return section


def fail_section(actor: Actor | None, section: Section, reason: str) -> Section:
    """Mark the section failed (流标), e.g. too few bids or too few qualified bids.

    For the later domains (opening, evaluation) as well as the deadline sweep.
    Refusals: ``invalid_transition``, ``reason_required``.
    """
    text = _reason(reason, _("流标原因"))
    previous = transition(section, SectionState.FAILED)
    section.failure_reason = text
    _session().flush()
    record_event(
        actor,
        "section.failed",
        "section",
        section.id,
        {"from": str(previous), "to": str(section.state), "reason": text},
    )
    return section


def close_section(actor: Actor | None, section: Section, at: datetime | None = None) -> Section:
    """At the bid deadline: published → closed, then → failed (流标) if fewer than 3 bids.

    Refusals: ``invalid_transition``, ``bid_deadline_passed`` is *not* used — instead
    ``conflict`` when the deadline has not come yet, and ``procedure_paused`` while an
    objection is unanswered. Raises :class:`BidCounterMissing` if the bids domain has not
    installed its counter.
    """
    at = at or now()
    _require_state(section, SectionState.PUBLISHED)
    assert section.bid_deadline is not None
    if at < section.bid_deadline:
        raise Conflict(
            _("投标截止时间未到，不能截标。"),
            code=ErrorCode.CONFLICT,
            details={"bid_deadline": _iso(section.bid_deadline)},
        )
    if section.paused:
        raise Conflict(
            _("尚有对招标文件的异议未答复，招标投标活动暂停。"),
            code=ErrorCode.PROCEDURE_PAUSED,
        )
    bids = count_bids(section)
    previous = transition(section, SectionState.CLOSED)
    section.closed_at = at
    _session().flush()
    record_event(
        actor,
        "section.closed",
        "section",
        section.id,
        {"from": str(previous), "to": str(section.state), "bids": bids, "at": _iso(at)},
    )
    if bids < MIN_BIDS_TO_OPEN:
        fail_section(
            actor,
            section,
            _(
                "投标截止时提交投标文件的投标人少于%(n)s个（%(bids)s个），依法不得开标。",
                n=MIN_BIDS_TO_OPEN,
                bids=bids,
            ),
        )
    return section


def close_due_sections(at: datetime) -> int:
    """Sweep handler: close every published section whose deadline has come (idempotent).

    Paused sections (an objection is unanswered) are skipped and picked up by a later
    sweep. Returns how many sections moved.
    """
    s = _session()
    stmt = (
        select(Section)
        .where(Section.state == SectionState.PUBLISHED, Section.bid_deadline <= at)
        .order_by(Section.bid_deadline, Section.id)
        .with_for_update(skip_locked=True)
    )
    if _bid_counter is None:
        due = s.scalar(
            select(func.count(Section.id)).where(
                Section.state == SectionState.PUBLISHED, Section.bid_deadline <= at
            )
        )
        if due:
            raise BidCounterMissing(f"{due} section(s) due but no bid counter installed")
        return 0
    moved = 0
    for section in s.scalars(stmt):
        if section.paused:
            continue
        close_section(None, section, at)
        moved += 1
    return moved


# =========================================================================== queries


def get_project(actor: Actor | None, project_id: uuid.UUID) -> Project:
    project = _session().get(Project, project_id)
    if project is None or not can_view_project(actor, project):
        raise NotFound(_("请求的资源不存在或您无权查看。"))
    return project


def get_section(actor: Actor | None, project_id: uuid.UUID, section_id: uuid.UUID) -> Section:
    section = _session().get(Section, section_id)
    if section is None or section.project_id != project_id or not can_view_section(actor, section):
        raise NotFound(_("请求的资源不存在或您无权查看。"))
    return section


def _visible_projects(actor: Actor | None) -> Select[Any]:
    stmt = select(Project)
    conditions: list[Any] = [
        Project.id.in_(select(Section.project_id).where(Section.state.in_(list(PUBLIC_STATES))))
    ]
    if actor is not None:
        orgs_t = actor.organisations_with(Role.TENDERER_REP)
        orgs_a = actor.organisations_with(Role.AGENCY_STAFF)
        centers = actor.centers_with(*CENTER_SIDE)
        if orgs_t:
            conditions.append(Project.tenderer_id.in_(orgs_t))
        if orgs_a:
            conditions.append(Project.agency_id.in_(orgs_a))
        if centers:
            conditions.append(Project.center_id.in_(centers))
    return stmt.where(or_(*conditions))


def projects_page(actor: Actor | None, *, cursor: str | None, limit: int) -> Page[Project]:
    """Projects ``actor`` may see, newest first."""
    return paginate(
        _session(),
        _visible_projects(actor),
        (Project.created_at, Project.id),
        cursor=cursor,
        limit=limit,
        descending=True,
    )


def _visible_sections(actor: Actor | None) -> Select[Any]:
    conditions: list[Any] = [Section.state.in_(list(PUBLIC_STATES))]
    if actor is not None:
        managed = select(Project.id).where(
            or_(
                Project.tenderer_id.in_(actor.organisations_with(Role.TENDERER_REP)),
                Project.agency_id.in_(actor.organisations_with(Role.AGENCY_STAFF)),
                Project.center_id.in_(actor.centers_with(*CENTER_SIDE)),
            )
        )
        conditions.append(Section.project_id.in_(managed))
    return select(Section).where(or_(*conditions))


def sections_page(
    actor: Actor | None,
    *,
    cursor: str | None,
    limit: int,
    project_id: uuid.UUID | None = None,
    states: Iterable[SectionState] | None = None,
    center_id: uuid.UUID | None = None,
) -> Page[Section]:
    """Sections ``actor`` may see (published ones for everyone), newest first."""
    stmt = _visible_sections(actor)
    if project_id is not None:
        stmt = stmt.where(Section.project_id == project_id)
    if states:
        stmt = stmt.where(Section.state.in_(list(states)))
    if center_id is not None:
        stmt = stmt.where(
            Section.project_id.in_(select(Project.id).where(Project.center_id == center_id))
        )
    return paginate(
        _session(),
        stmt,
        (Section.created_at, Section.id),
        cursor=cursor,
        limit=limit,
        descending=True,
    )


def announcements_page(*, cursor: str | None, limit: int) -> Page[Section]:
    """Public tender announcements (招标公告): published sections, latest first."""
    stmt = select(Section).where(
        Section.published_at.is_not(None), Section.state.in_(list(PUBLIC_STATES))
    )
    return paginate(
        _session(),
        stmt,
        (Section.published_at, Section.id),
        cursor=cursor,
        limit=limit,
        descending=True,
    )


def findings_of(
    actor: Actor | None, section: Section, *, all_rounds: bool = False
) -> list[ReviewFinding]:
    """The review findings of the section's current round (managers and center only)."""
    if not (_is_manager(actor, section.project) or _is_center_side(actor, section.project)):
        raise NotFound(_("请求的资源不存在或您无权查看。"))
    stmt = select(ReviewFinding).where(ReviewFinding.section_id == section.id)
    if not all_rounds:
        stmt = stmt.where(ReviewFinding.review_round == section.review_round)
    return list(_session().scalars(stmt.order_by(ReviewFinding.created_at, ReviewFinding.id)))


def objections_of(actor: Actor | None, section: Section) -> list[Objection]:
    """Managers and the center see every objection; a bidder sees its own."""
    _require_visible(actor, section)
    stmt = select(Objection).where(Objection.section_id == section.id)
    if not (_is_manager(actor, section.project) or _is_center_side(actor, section.project)):
        orgs = actor.organisations_with(Role.BIDDER_REP) if actor is not None else set()
        stmt = stmt.where(Objection.bidder_id.in_(orgs))
    return list(_session().scalars(stmt.order_by(Objection.raised_at, Objection.id)))


def registrations_of(actor: Actor | None, section: Section) -> list[Registration]:
    """Managers and the center see every registration; a bidder sees its own.

    Who registered is confidential before the opening (ZTBF 22)."""
    _require_visible(actor, section)
    stmt = select(Registration).where(Registration.section_id == section.id)
    if not _is_center_side(actor, section.project) and not _is_manager(actor, section.project):
        orgs = actor.organisations_with(Role.BIDDER_REP) if actor is not None else set()
        stmt = stmt.where(Registration.bidder_id.in_(orgs))
    return list(_session().scalars(stmt.order_by(Registration.registered_at, Registration.id)))


def audit_trail(actor: Actor | None, section: Section) -> list[Any]:
    """The section's audit events (见证记录), oldest first: managers and the center side."""
    from bidding.core.audit import AuditEvent

    if not (_is_manager(actor, section.project) or _is_center_side(actor, section.project)):
        raise NotFound(_("请求的资源不存在或您无权查看。"))
    return list(
        _session().scalars(
            select(AuditEvent)
            .where(AuditEvent.object_type == "section", AuditEvent.object_id == str(section.id))
            .order_by(AuditEvent.created_at, AuditEvent.id)
        )
    )

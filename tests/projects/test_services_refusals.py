"""Every refusal path of the projects services, by stable error code."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bidding.accounts.models import OrganisationKind
from bidding.core.clock import Clock
from bidding.core.errors import DomainError
from bidding.core.roles import Role
from bidding.projects import services
from bidding.projects.models import DocumentKind, ProjectKind, SectionState, Subject
from bidding.projects.services import CustodianSpec
from crypto.pki import public_key_to_pem
from tests.projects.conftest import BidCounts
from tests.projects.factories import (
    CLEAN_TEXT,
    World,
    custodian_keypair,
    custodian_specs,
    draft_section,
    make_center,
    make_org,
    make_user,
    published_section,
    register,
    section_fields,
    submit_keys,
    timeline,
    upload_text,
)

BAD_CLAUSE = "投标人须在本市注册的企业方可参加投标。\n"


def refused(code: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> DomainError:
    with pytest.raises(DomainError) as info:
        fn(*args, **kwargs)
    assert info.value.code == code, (info.value.code, info.value.message, info.value.details)
    return info.value


def _register_kwargs(w: World, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": "项目",
        "kind": ProjectKind.TENDERING,
        "subject": Subject.GOODS,
        "tenderer_id": w.tenderer.id,
        "agency_id": w.agency.id,
        "center_id": w.center.id,
        "region_code": "540200",
        "amount": Decimal("100.00"),
    }
    values.update(overrides)
    return values


def under_review(w: World, text: str = CLEAN_TEXT) -> Any:
    section = draft_section(w)
    submit_keys(w, section)
    upload_text(w, section, text)
    services.submit_for_review(w.agent, section)
    return section


# --------------------------------------------------------------------------- register_project


def test_register_project_refusals(world: World) -> None:
    w = world
    refused("forbidden", services.register_project, w.outsider, **_register_kwargs(w))
    refused("forbidden", services.register_project, w.bidder_reps[0], **_register_kwargs(w))
    refused(
        "organisation_kind_invalid",
        services.register_project,
        w.agent,
        **_register_kwargs(w, tenderer_id=w.agency.id),
    )
    refused(
        "organisation_kind_invalid",
        services.register_project,
        w.agent,
        **_register_kwargs(w, agency_id=w.tenderer.id),
    )
    refused(
        "not_found",
        services.register_project,
        w.agent,
        **_register_kwargs(w, tenderer_id=uuid.uuid4()),
    )
    refused(
        "not_found",
        services.register_project,
        w.agent,
        **_register_kwargs(w, center_id=uuid.uuid4()),
    )
    other = make_center()
    refused(
        "center_mismatch",
        services.register_project,
        w.agent,
        **_register_kwargs(w, center_id=other.id),
    )
    refused(
        "invalid_region_code",
        services.register_project,
        w.agent,
        **_register_kwargs(w, region_code="12345"),
    )
    refused(
        "amount_invalid",
        services.register_project,
        w.agent,
        **_register_kwargs(w, amount=Decimal("0")),
    )
    refused(
        "validation_error", services.register_project, w.agent, **_register_kwargs(w, name="  ")
    )


def test_tenderer_rep_may_register_without_agency(world: World) -> None:
    project = register(world, agency=False)
    assert project.agency_id is None and project.created_by_id == world.tenderer_rep.id


# --------------------------------------------------------------------------- create / update


def _create(w: World, project: Any, actor: Any = None, **overrides: Any) -> Any:
    fields = section_fields(**overrides)
    fields.setdefault("custodians", custodian_specs(w))
    return services.create_section(actor or w.agent, project, **fields)


def test_create_section_refusals(world: World) -> None:
    w = world
    project = register(w)
    refused("forbidden", _create, w, project, actor=w.outsider)
    refused("forbidden", _create, w, project, actor=w.staff)
    refused("minimum_price_forbidden", _create, w, project, minimum_price=Decimal("1.00"))
    refused("maximum_price_invalid", _create, w, project, maximum_price=Decimal("0.00"))
    refused("deposit_over_cap", _create, w, project, bid_deposit=Decimal("100000.01"))
    refused("bid_validity_invalid", _create, w, project, bid_validity_days=10)
    refused("committee_invalid", _create, w, project, committee_size=4, committee_experts=3)
    refused("committee_invalid", _create, w, project, committee_size=5, committee_experts=3)
    refused("evaluation_method_invalid", _create, w, project, evaluation_method={"kind": "magic"})
    refused(
        "evaluation_method_invalid",
        _create,
        w,
        project,
        evaluation_method={"kind": "comprehensive", "criteria": [{"id": "p"}]},
    )
    refused("validation_error", _create, w, project, name=" ")
    refused("validation_error", _create, w, project, timeline={"opening_at": None})
    refused("custodians_invalid", _create, w, project, custodian_threshold=1)
    refused("custodians_invalid", _create, w, project, custodians=custodian_specs(w)[:2])
    refused(
        "custodians_invalid",
        _create,
        w,
        project,
        custodians=[*custodian_specs(w)[:2], CustodianSpec(w.tenderer_rep.id, Role.TENDERER_REP)],
    )
    # a role the user does not hold in this project
    refused(
        "custodians_invalid",
        _create,
        w,
        project,
        custodians=[*custodian_specs(w)[:2], CustodianSpec(w.outsider.id, Role.AGENCY_STAFF)],
    )
    _, second_staff = make_user((Role.CENTER_STAFF, w.center))
    refused(
        "custodians_invalid",
        _create,
        w,
        project,
        custodians=[*custodian_specs(w), CustodianSpec(w.staff.id, Role.CENTER_STAFF)],
    )
    refused(
        "custodians_invalid",
        _create,
        w,
        project,
        custodians=[
            CustodianSpec(w.staff.id, Role.CENTER_STAFF),
            CustodianSpec(second_staff.id, Role.CENTER_STAFF),
            CustodianSpec(w.agent.id, Role.AGENCY_STAFF),
        ],
    )
    refused(
        "not_found",
        _create,
        w,
        project,
        custodians=[*custodian_specs(w)[:2], CustodianSpec(uuid.uuid4(), Role.AGENCY_STAFF)],
    )


def test_evaluation_method_is_checked_by_the_rules(world: World) -> None:
    w = world
    project = register(w, kind="procurement")
    method = {
        "kind": "comprehensive",
        "criteria": [
            {"id": "price", "name": "价格", "category": "price", "max_score": "20", "weight": None},
            {"id": "tech", "name": "技术", "category": "technical", "max_score": "80"},
        ],
        "price_formula": {"kind": "low_price_first"},
    }
    refused("price_weight_too_low", _create, w, project, evaluation_method=method)
    method["criteria"][0]["max_score"] = "30"  # type: ignore[index]
    method["criteria"][1]["max_score"] = "70"  # type: ignore[index]
    section = _create(w, project, evaluation_method=method)
    assert section.evaluation_method["kind"] == "comprehensive"


def test_update_section_refusals(world: World) -> None:
    w = world
    section = draft_section(w)
    refused("forbidden", services.update_section, w.outsider, section, {"name": "x"})
    refused(
        "precondition_failed",
        services.update_section,
        w.agent,
        section,
        {"name": "x"},
        if_match='"nope"',
    )
    refused("validation_error", services.update_section, w.agent, section, {"state": "published"})
    refused("validation_error", services.update_section, w.agent, section, {"name": "  "})
    refused(
        "minimum_price_forbidden",
        services.update_section,
        w.agent,
        section,
        {"minimum_price": Decimal("10.00")},
    )
    refused(
        "deposit_over_cap",
        services.update_section,
        w.agent,
        section,
        {"bid_deposit": Decimal("1e6")},
    )
    refused(
        "custodians_invalid", services.update_section, w.agent, section, {"custodian_threshold": 4}
    )
    services.update_section(w.agent, section, {"name": "新名称"}, if_match=f"W/{section.etag}")
    submit_keys(w, section)
    upload_text(w, section)
    services.submit_for_review(w.agent, section)
    refused("section_not_editable", services.update_section, w.agent, section, {"name": "y"})


def test_set_custodian_key_refusals(world: World) -> None:
    w = world
    section = draft_section(w)
    _, pem = custodian_keypair()
    refused("not_a_custodian", services.set_custodian_key, w.tenderer_rep, section, pem)
    refused("custodian_key_invalid", services.set_custodian_key, w.staff, section, "garbage")
    ed = public_key_to_pem(Ed25519PrivateKey.generate().public_key()).decode()
    refused("custodian_key_invalid", services.set_custodian_key, w.staff, section, ed)
    services.set_custodian_key(w.staff, section, pem)
    refused("custodian_key_invalid", services.set_custodian_key, w.supervisor, section, pem)
    published = published_section(w)
    refused("section_not_editable", services.set_custodian_key, w.staff, published, pem)


def test_custodian_key_cannot_change_once_prepared(world: World) -> None:
    w = world
    section = under_review(w)
    services.prepare_publication(w.agent, section)
    _, pem = custodian_keypair()
    refused("section_not_editable", services.set_custodian_key, w.staff, section, pem)


# --------------------------------------------------------------------------- documents


def test_upload_document_refusals(world: World) -> None:
    w = world
    section = draft_section(w)
    data = b"hello"

    def up(actor: Any = None, **kw: Any) -> Any:
        values: dict[str, Any] = {
            "filename": "招标文件.txt",
            "content_type": "text/plain",
            "length": 5,
        }
        values.update(kw)
        return services.upload_document(actor or w.agent, section, io.BytesIO(data), **values)

    refused("forbidden", up, w.outsider)
    refused(
        "unsupported_document_type",
        up,
        filename="setup.exe",
        content_type="application/x-msdownload",
    )
    refused(
        "unsupported_document_type", up, filename="招标文件.doc", content_type="application/msword"
    )
    refused("validation_error", up, filename="  ")
    refused("checksum_mismatch", up, expected_sha256="0" * 64)
    refused("upload_incomplete", up, length=10)
    refused("section_not_published", up, kind=DocumentKind.CLARIFICATION)
    doc = up(filename="C:\\文件\\招标文件.txt")
    assert doc.filename == "招标文件.txt" and doc.size == 5 and len(doc.sha256) == 64
    submit_keys(w, section)
    services.submit_for_review(w.agent, section)
    refused("section_not_editable", up)
    refused("section_not_editable", services.remove_document, w.agent, doc)


def test_remove_document_refusals(world: World) -> None:
    w = world
    section = draft_section(w)
    doc = upload_text(w, section)
    refused("forbidden", services.remove_document, w.outsider, doc)
    services.remove_document(w.agent, doc)
    refused("not_found", services.remove_document, w.agent, doc)


def test_documents_visibility(world: World) -> None:
    w = world
    section = draft_section(w)
    doc = upload_text(w, section)
    refused("not_found", services.list_documents, None, section)
    refused("not_found", services.list_documents, w.bidder_reps[0], section)
    refused("not_found", services.document_download_url, w.bidder_reps[0], doc)
    assert services.list_documents(w.staff, section) == [doc]
    published = published_section(w)
    assert len(services.list_documents(None, published)) == 1
    assert services.document_download_url(None, published.documents[0])


# --------------------------------------------------------------------------- review


def test_submit_for_review_refusals(world: World) -> None:
    w = world
    section = draft_section(w)
    refused("forbidden", services.submit_for_review, w.outsider, section)
    refused("tender_documents_missing", services.submit_for_review, w.agent, section)
    upload_text(w, section)
    services.submit_for_review(w.agent, section)
    refused("invalid_transition", services.submit_for_review, w.agent, section)


def test_submit_for_review_unreadable_document(world: World) -> None:
    w = world
    section = draft_section(w)
    data = b"%PDF-1.7 this is not really a pdf"
    services.upload_document(
        w.agent,
        section,
        io.BytesIO(data),
        filename="招标文件.pdf",
        content_type="application/pdf",
        length=len(data),
    )
    refused("document_unreadable", services.submit_for_review, w.agent, section)


def test_withdraw_from_review_refusals(world: World) -> None:
    w = world
    section = draft_section(w)
    refused("invalid_transition", services.withdraw_from_review, w.agent, section)
    upload_text(w, section)
    services.submit_for_review(w.agent, section)
    refused("forbidden", services.withdraw_from_review, w.outsider, section)


def test_override_finding_refusals(world: World) -> None:
    w = world
    section = under_review(w, CLEAN_TEXT + BAD_CLAUSE)
    finding = section.open_findings[0]
    reason = "经核实该条款符合项目实际需要。"
    refused("forbidden", services.override_finding, w.agent, finding, reason)
    refused("forbidden", services.override_finding, w.supervisor, finding, reason)
    other_center_staff = make_user((Role.CENTER_STAFF, make_center()))[1]
    refused("forbidden", services.override_finding, other_center_staff, finding, reason)
    refused("override_reason_required", services.override_finding, w.staff, finding, " 同意 ")
    services.override_finding(w.staff, finding, reason)
    refused("finding_not_open", services.override_finding, w.staff, finding, reason)
    second = draft_section(w)
    submit_keys(w, second)
    upload_text(w, second, CLEAN_TEXT + BAD_CLAUSE)
    services.submit_for_review(w.agent, second)
    stale = second.open_findings[0]
    services.withdraw_from_review(w.agent, second)
    refused("invalid_transition", services.override_finding, w.staff, stale, reason)


# --------------------------------------------------------------------------- publication


def test_prepare_publication_refusals(world: World, frozen_clock: Clock) -> None:
    w = world
    section = draft_section(w)
    refused("invalid_transition", services.prepare_publication, w.agent, section)
    upload_text(w, section)
    services.submit_for_review(w.agent, section)
    refused("forbidden", services.prepare_publication, w.outsider, section)
    refused("custodian_key_missing", services.prepare_publication, w.agent, section)

    no_timeline = draft_section(w, timeline={})
    submit_keys(w, no_timeline)
    upload_text(w, no_timeline)
    services.submit_for_review(w.agent, no_timeline)
    refused("timeline_invalid", services.prepare_publication, w.agent, no_timeline)

    too_early = draft_section(w, timeline=timeline(days=15))
    submit_keys(w, too_early)
    upload_text(w, too_early)
    services.submit_for_review(w.agent, too_early)
    refused("deadline_too_early", services.prepare_publication, w.agent, too_early)

    no_custodians = services.create_section(
        w.agent, register(w), timeline=timeline(), **section_fields()
    )
    upload_text(w, no_custodians)
    services.submit_for_review(w.agent, no_custodians)
    refused("custodians_invalid", services.prepare_publication, w.agent, no_custodians)


def test_publish_section_refusals(world: World, frozen_clock: Clock) -> None:
    w = world
    section = draft_section(w)
    refused("invalid_transition", services.publish_section, w.agent, section)
    submit_keys(w, section)
    upload_text(w, section)
    services.submit_for_review(w.agent, section)
    refused("publication_not_prepared", services.publish_section, w.agent, section)
    services.prepare_publication(w.agent, section)
    refused("forbidden", services.publish_section, w.outsider, section)
    refused("precondition_failed", services.publish_section, w.agent, section, fingerprint="f" * 64)
    # prepared, then left lying for 6 days: documents are issued at publication, too late
    frozen_clock.move(timedelta(days=6))
    refused("deadline_too_early", services.publish_section, w.agent, section)
    assert section.state is SectionState.UNDER_REVIEW


def test_publish_refused_while_findings_open(world: World) -> None:
    w = world
    section = under_review(w, CLEAN_TEXT + BAD_CLAUSE)
    refused("review_findings_open", services.prepare_publication, w.agent, section)


# --------------------------------------------------------------------------- after publication


def test_issue_clarification_refusals(world: World, frozen_clock: Clock) -> None:
    w = world
    draft = draft_section(w)
    refused("section_not_published", services.issue_clarification, w.agent, draft, text="x")
    section = published_section(w)
    refused("forbidden", services.issue_clarification, w.outsider, section, text="x")
    refused("forbidden", services.issue_clarification, w.bidder_reps[0], section, text="x")
    refused("validation_error", services.issue_clarification, w.agent, section, text="  ")
    refused(
        "validation_error",
        services.issue_clarification,
        w.agent,
        section,
        text="见附件",
        document=draft.documents[0] if draft.documents else upload_text(w, draft),
    )
    proc = published_section(w, register(w, kind="procurement"))
    refused(
        "amendment_changes_subject",
        services.issue_clarification,
        w.agent,
        proc,
        text="变更资格条件",
        changes_qualifications=True,
    )
    frozen_clock.freeze(section.bid_deadline)
    refused("bid_deadline_passed", services.issue_clarification, w.agent, section, text="迟到")


def test_clarification_document_and_recipients(world: World) -> None:
    w = world
    section = published_section(w)
    services.register_bidder(w.bidder_reps[0], section)
    data = "澄清文件：第5项参数更正。".encode()
    doc = services.upload_document(
        w.agent,
        section,
        io.BytesIO(data),
        filename="澄清.txt",
        content_type="text/plain",
        length=len(data),
        kind=DocumentKind.CLARIFICATION,
    )
    c = services.issue_clarification(w.agent, section, text="详见澄清文件。", document=doc)
    assert c.document_id == doc.id


def test_register_bidder_refusals(world: World, frozen_clock: Clock) -> None:
    w = world
    draft = draft_section(w)
    refused("not_found", services.register_bidder, w.bidder_reps[0], draft)
    section = published_section(w)
    refused("forbidden", services.register_bidder, w.agent, section)
    refused(
        "forbidden", services.register_bidder, w.bidder_reps[0], section, bidder_id=w.bidders[1].id
    )
    # a person representing two bidders must say which
    _, two = make_user((Role.BIDDER_REP, w.bidders[2]), (Role.BIDDER_REP, w.bidders[3]))
    refused("forbidden", services.register_bidder, two, section)
    services.register_bidder(two, section, bidder_id=w.bidders[3].id)
    services.register_bidder(w.bidder_reps[0], section)
    refused("already_registered", services.register_bidder, w.bidder_reps[0], section)
    cancelled = published_section(w)
    services.cancel_section(w.agent, cancelled, "资金未落实，终止招标。")
    refused("section_not_published", services.register_bidder, w.bidder_reps[0], cancelled)
    frozen_clock.freeze(section.bid_deadline)
    refused("bid_deadline_passed", services.register_bidder, w.bidder_reps[1], section)


def test_raise_objection_refusals(world: World, frozen_clock: Clock) -> None:
    w = world
    section = published_section(w)
    refused("forbidden", services.raise_objection, w.agent, section, "x")
    refused("not_registered", services.raise_objection, w.bidder_reps[0], section, "x")
    services.register_bidder(w.bidder_reps[0], section)
    refused("validation_error", services.raise_objection, w.bidder_reps[0], section, " ")
    frozen_clock.freeze(section.bid_deadline - timedelta(days=9))
    refused("objection_too_late", services.raise_objection, w.bidder_reps[0], section, "太晚了")
    cancelled = published_section(w)
    services.cancel_section(w.agent, cancelled, "资金未落实，终止招标。")
    refused("section_not_published", services.raise_objection, w.bidder_reps[0], cancelled, "x")


def test_answer_objection_refusals(world: World) -> None:
    w = world
    section = published_section(w)
    services.register_bidder(w.bidder_reps[0], section)
    objection = services.raise_objection(w.bidder_reps[0], section, "资格条件限制外地企业。")
    refused("forbidden", services.answer_objection, w.bidder_reps[0], objection, "自答")
    refused("forbidden", services.answer_objection, w.staff, objection, "答复")
    refused("validation_error", services.answer_objection, w.agent, objection, "")
    services.answer_objection(w.tenderer_rep, objection, "已修改。")
    refused("objection_already_answered", services.answer_objection, w.agent, objection, "再答")


def test_objection_visibility(world: World) -> None:
    w = world
    section = published_section(w)
    for rep in w.bidder_reps[:2]:
        services.register_bidder(rep, section)
        services.raise_objection(rep, section, "异议内容")
    assert len(services.objections_of(w.agent, section)) == 2
    assert len(services.objections_of(w.supervisor, section)) == 2
    mine = services.objections_of(w.bidder_reps[0], section)
    assert [o.bidder_id for o in mine] == [w.bidders[0].id]
    assert services.objections_of(None, section) == []
    assert len(services.registrations_of(w.bidder_reps[1], section)) == 1
    assert services.registrations_of(None, section) == []


def test_cancel_section_refusals(world: World) -> None:
    w = world
    section = draft_section(w)
    refused("forbidden", services.cancel_section, w.outsider, section, "终止招标理由充分。")
    refused("reason_required", services.cancel_section, w.agent, section, "短")
    services.cancel_section(w.agent, section, "项目取消，终止招标。")
    refused("invalid_transition", services.cancel_section, w.agent, section, "再次终止招标理由。")


def test_fail_and_close_refusals(world: World, frozen_clock: Clock, bid_counts: BidCounts) -> None:
    w = world
    draft = draft_section(w)
    refused("invalid_transition", services.close_section, None, draft)
    section = published_section(w)
    refused("invalid_transition", services.fail_section, None, section, "投标人不足三家。")
    refused("conflict", services.close_section, None, section)
    frozen_clock.freeze(section.bid_deadline)
    bid_counts.counts[section.id] = 3
    services.close_section(None, section)
    refused("reason_required", services.fail_section, None, section, "")
    refused("invalid_transition", services.close_section, None, section)


# --------------------------------------------------------------------------- queries


def test_section_visibility(world: World) -> None:
    w = world
    draft = draft_section(w)
    pid = draft.project_id
    for actor in (None, w.bidder_reps[0], w.outsider):
        refused("not_found", services.get_section, actor, pid, draft.id)
        refused("not_found", services.findings_of, actor, draft)
    refused("not_found", services.get_section, w.agent, uuid.uuid4(), draft.id)
    assert services.get_section(w.supervisor, pid, draft.id) is draft
    assert services.get_section(w.tenderer_rep, pid, draft.id) is draft
    refused("not_found", services.get_project, None, pid)
    published = published_section(w)
    assert services.get_section(None, published.project_id, published.id) is published
    assert services.get_project(None, published.project_id).id == published.project_id
    page = services.sections_page(None, cursor=None, limit=10)
    assert [s.id for s in page.items] == [published.id]
    page = services.sections_page(w.staff, cursor=None, limit=10)
    assert {s.id for s in page.items} == {draft.id, published.id}
    assert [s.id for s in services.announcements_page(cursor=None, limit=5).items] == [published.id]
    outsider_page = services.projects_page(w.outsider, cursor=None, limit=10)
    assert [p.id for p in outsider_page.items] == [published.project_id]


def test_bidder_org_of_another_kind_is_not_a_bidder(world: World) -> None:
    w = world
    section = published_section(w)
    guarantor = make_org(OrganisationKind.GUARANTOR, w.center)
    _, g = make_user((Role.GUARANTOR, guarantor))
    refused("forbidden", services.register_bidder, g, section)

"""The main line of a section's life through the services, and the acceptance lines."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from bidding.core import db
from bidding.core.audit import AuditEvent
from bidding.core.clock import Clock
from bidding.core.errors import DomainError
from bidding.core.tasks import registered_sweeps
from bidding.projects import services
from bidding.projects.codes import parse_section_code
from bidding.projects.models import FindingStatus, SectionState
from bidding.projects.rules.base import local_date
from crypto.threshold import combine_shares, decrypt_share
from tests.projects.conftest import BidCounts
from tests.projects.factories import (
    CLEAN_TEXT,
    World,
    draft_section,
    published_section,
    register,
    submit_keys,
    upload_text,
)


def _actions(object_id: object) -> list[str]:
    rows = db.get_session().scalars(
        select(AuditEvent)
        .where(AuditEvent.object_id == str(object_id))
        .order_by(AuditEvent.created_at)
    )
    return [e.action for e in rows]


def test_register_project_assigns_codes(world: World) -> None:
    project = register(world)
    assert project.transaction_code == project.code
    assert project.code.startswith("540200-2026-HZ-000001-")
    second = register(world)
    assert second.code.startswith("540200-2026-HZ-000002-")
    assert _actions(project.id) == ["project.registered"]


def test_section_code_extends_project_code(world: World) -> None:
    project = register(world)
    one = draft_section(world, project)
    two = draft_section(world, project, name="二标段")
    assert one.code == project.code + "-001"
    assert parse_section_code(two.code).serial == 2
    assert [c.role for c in one.custodians] == ["center_staff", "supervisor", "agency_staff"]


def test_full_publication_runs_the_ceremony(world: World) -> None:
    section = published_section(world)
    assert section.state is SectionState.PUBLISHED
    assert section.published_at is not None
    assert len(section.opening_public_key or "") == 64
    ceremony = services.opening_ceremony(section)
    assert ceremony.fingerprint == section.opening_key_fingerprint
    assert (ceremony.k, ceremony.n) == (2, 3)
    # custodians hold sealed shares; any 2 of them restore the published key
    shares = []
    for custodian in section.custodians[:2]:
        key = world.custodian_keys[custodian.user_id]
        shares.append(
            decrypt_share(ceremony.encrypted_shares[custodian.share_index - 1], key, ceremony)
        )
    private = combine_shares(shares, ceremony)
    assert private.public_key().public_bytes_raw().hex() == section.opening_public_key
    actions = _actions(section.id)
    for action in (
        "section.created",
        "section.document_uploaded",
        "section.submitted_for_review",
        "section.publication_prepared",
        "section.published",
    ):
        assert action in actions
    assert section.objection_cutoff is not None


def test_prepare_and_publish_are_idempotent(world: World) -> None:
    section = draft_section(world)
    submit_keys(world, section)
    upload_text(world, section)
    services.submit_for_review(world.agent, section)
    services.prepare_publication(world.agent, section)
    fingerprint = section.opening_key_fingerprint
    services.prepare_publication(world.agent, section)  # retried: same key
    assert section.opening_key_fingerprint == fingerprint
    services.publish_section(world.agent, section, fingerprint=fingerprint)
    services.publish_section(world.agent, section, fingerprint=fingerprint)  # retried
    services.prepare_publication(world.agent, section)  # after publication: no new key
    assert section.opening_key_fingerprint == fingerprint
    assert _actions(section.id).count("section.published") == 1
    assert _actions(section.id).count("section.publication_prepared") == 1


# acceptance (4): a restrictive clause is flagged with rule and clause; publishing is refused
# until the center overrides it with a reason
@pytest.mark.parametrize(
    ("clause", "rule_hint"),
    [
        ("投标人须在本市注册的企业方可参加投标。", "local"),
        ("投标设备须采用西门子品牌。", "brand"),
    ],
)
def test_restrictive_clause_blocks_publication_until_overridden(
    world: World, clause: str, rule_hint: str
) -> None:
    section = draft_section(world)
    submit_keys(world, section)
    upload_text(world, section, CLEAN_TEXT + clause + "\n")
    findings = services.submit_for_review(world.agent, section)
    flagged = [f for f in findings if clause.rstrip("。\n")[:6] in f.clause]
    assert flagged, [f.clause for f in findings]
    finding = flagged[0]
    assert finding.rule_id and finding.legal_basis and finding.location
    with pytest.raises(DomainError) as info:
        services.prepare_publication(world.agent, section)
    assert info.value.code == "review_findings_open"
    for f in findings:
        services.override_finding(world.staff, f, "经核实该条款与项目实际需要相符，予以保留。")
    assert finding.status is FindingStatus.OVERRIDDEN
    assert finding.overridden_by_id == world.staff.id
    services.prepare_publication(world.agent, section)
    services.publish_section(world.agent, section)
    assert section.state is SectionState.PUBLISHED
    assert "review_finding.overridden" in _actions(section.id)


# acceptance (5): a clarification 10 days before the deadline moves the deadline so 15 remain
def test_clarification_ten_days_before_deadline_moves_it(world: World, frozen_clock: Clock) -> None:
    section = published_section(world)
    deadline = section.bid_deadline
    assert deadline is not None
    frozen_clock.freeze(deadline - timedelta(days=10))
    clarification = services.issue_clarification(
        world.agent, section, text="第三章技术参数第5项更正为：额定功率不低于5kW。"
    )
    assert clarification.previous_deadline == deadline
    assert clarification.deadline_moved
    assert section.bid_deadline == clarification.new_deadline
    remaining = (local_date(section.bid_deadline) - local_date(frozen_clock.now())).days
    assert remaining == 15
    assert section.bid_deadline.time() == deadline.time()


def test_clarification_with_enough_time_keeps_deadline(world: World, frozen_clock: Clock) -> None:
    section = published_section(world)
    deadline = section.bid_deadline
    clarification = services.issue_clarification(world.agent, section, text="答疑：无变化。")
    assert not clarification.deadline_moved and section.bid_deadline == deadline
    frozen_clock.freeze(deadline - timedelta(days=3))  # type: ignore[operator]
    note = services.issue_clarification(
        world.agent, section, text="会议室变更。", affects_bids=False
    )
    assert not note.deadline_moved


def test_register_and_object_and_answer(world: World, frozen_clock: Clock) -> None:
    section = published_section(world)
    registration = services.register_bidder(world.bidder_reps[0], section)
    assert registration.bidder_id == world.bidders[0].id
    objection = services.raise_objection(
        world.bidder_reps[0], section, "第二章资格条件第3条限制了外地企业。"
    )
    assert section.paused
    answered = services.answer_objection(world.agent, objection, "经研究，已删除该条款，详见澄清。")
    assert answered.answered_at is not None and not section.paused
    assert "section.objection_answered" in _actions(section.id)


# acceptance (3) via the hook: a section with 2 bids fails at the deadline
def test_sweep_fails_section_with_two_bids(
    world: World, frozen_clock: Clock, bid_counts: BidCounts
) -> None:
    short = published_section(world)
    enough = published_section(world)
    bid_counts.counts[short.id] = 2
    bid_counts.counts[enough.id] = 3
    assert "projects.close_due_sections" in registered_sweeps()
    assert services.close_due_sections(frozen_clock.now()) == 0  # nothing due yet
    frozen_clock.freeze(short.bid_deadline)  # type: ignore[arg-type]
    moved = registered_sweeps()["projects.close_due_sections"](frozen_clock.now())
    assert moved == 2
    assert short.state is SectionState.FAILED
    assert "少于3个" in (short.failure_reason or "")
    assert enough.state is SectionState.CLOSED and enough.closed_at == frozen_clock.now()
    assert services.close_due_sections(frozen_clock.now()) == 0  # idempotent
    assert {"section.closed", "section.failed"} <= set(_actions(short.id))
    assert "section.failed" not in _actions(enough.id)


def test_sweep_skips_a_paused_section(
    world: World, frozen_clock: Clock, bid_counts: BidCounts
) -> None:
    section = published_section(world)
    bid_counts.counts[section.id] = 5
    services.register_bidder(world.bidder_reps[0], section)
    objection = services.raise_objection(world.bidder_reps[0], section, "评分标准不清。")
    frozen_clock.freeze(section.bid_deadline + timedelta(minutes=1))  # type: ignore[operator]
    assert services.close_due_sections(frozen_clock.now()) == 0
    assert section.state is SectionState.PUBLISHED
    with pytest.raises(DomainError) as info:
        services.close_section(None, section)
    assert info.value.code == "procedure_paused"
    services.answer_objection(world.agent, objection, "评分标准见第三章，已澄清。")
    assert services.close_due_sections(frozen_clock.now()) == 1
    assert section.state is SectionState.CLOSED


def test_sweep_without_bid_counter_closes_nothing(world: World, frozen_clock: Clock) -> None:
    section = published_section(world)
    previous = services.set_bid_counter(None)
    try:
        frozen_clock.freeze(section.bid_deadline)  # type: ignore[arg-type]
        with pytest.raises(services.BidCounterMissing):
            services.close_due_sections(frozen_clock.now())
        assert section.state is SectionState.PUBLISHED
    finally:
        services.set_bid_counter(previous)


def test_cancel_with_reason(world: World) -> None:
    section = published_section(world)
    services.cancel_section(world.agent, section, "项目资金未落实，依法终止招标。")
    assert section.state is SectionState.CANCELLED
    assert section.cancel_reason == "项目资金未落实，依法终止招标。"


def test_update_draft_with_etag(world: World) -> None:
    section = draft_section(world)
    etag = section.etag
    services.update_section(
        world.agent, section, {"bid_deposit": Decimal("60000.00")}, if_match=etag
    )
    assert section.bid_deposit == Decimal("60000.00")
    assert section.etag != etag
    with pytest.raises(DomainError) as info:
        services.update_section(world.agent, section, {"name": "x标段"}, if_match=etag)
    assert info.value.code == "precondition_failed" and info.value.http_status == 412


def test_withdraw_from_review_discards_findings_round(world: World) -> None:
    section = draft_section(world)
    submit_keys(world, section)
    bad = upload_text(world, section, CLEAN_TEXT + "投标人须在本市注册的企业方可参加投标。\n")
    findings = services.submit_for_review(world.agent, section)
    assert findings
    services.withdraw_from_review(world.agent, section)
    assert section.state is SectionState.DRAFT
    services.remove_document(world.agent, bad)
    upload_text(world, section, CLEAN_TEXT, name="招标文件（修改稿）.txt")
    assert services.submit_for_review(world.agent, section) == []
    assert section.review_round == 2 and section.open_findings == []
    assert [d.filename for d in section.documents] == ["招标文件（修改稿）.txt"]
    services.prepare_publication(world.agent, section)
    services.publish_section(world.agent, section)
    assert section.state is SectionState.PUBLISHED

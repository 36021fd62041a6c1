"""Notifications made by the audit listeners: who gets what, with which parameters, and
nothing when the operation is refused or rolled back. SQLite, eager Celery, local storage."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from bidding.accounts.models import User
from bidding.core import db
from bidding.core.audit.models import AuditEvent
from bidding.core.clock import Clock
from bidding.core.errors import DomainError
from bidding.core.roles import Role
from bidding.notifications import services
from bidding.notifications.models import Notification, NotificationKind
from bidding.opening import services as opening
from bidding.projects import services as projects
from bidding.projects.models import Section
from tests.opening.factories import close, commit, opening_with_bids, share_json
from tests.projects.factories import World, make_user, published_section


def _rows(kind: NotificationKind | None = None) -> list[Notification]:
    stmt = select(Notification).order_by(Notification.created_at, Notification.id)
    if kind is not None:
        stmt = stmt.where(Notification.kind == kind)
    return list(db.get_session().scalars(stmt))


def _recipients(kind: NotificationKind) -> set[uuid.UUID]:
    return {n.user_id for n in _rows(kind)}


def _reps(world: World, *indices: int) -> set[uuid.UUID]:
    return {world.bidder_reps[i].id for i in indices}


def _reload(section: Section) -> Section:
    fresh = db.get_session().get(Section, section.id)
    assert fresh is not None
    return fresh


def _register(world: World, section: Section, *indices: int) -> None:
    for i in indices:
        projects.register_bidder(world.bidder_reps[i], section)


def test_clarification_reaches_every_rep_of_the_registered_bidders_only(
    world: World, frozen_clock: Clock
) -> None:
    section = published_section(world)
    second_rep, _ = make_user((Role.BIDDER_REP, world.bidders[0]))
    retired, _ = make_user((Role.BIDDER_REP, world.bidders[1]))
    retired.active = False
    _register(world, section, 0, 1)
    deadline = section.bid_deadline

    clarification = projects.issue_clarification(
        world.agent, section, text="第三章技术参数第5项更正为≥64排。", affects_bids=True
    )
    commit()

    rows = _rows(NotificationKind.CLARIFICATION_ISSUED)
    assert {n.user_id for n in rows} == _reps(world, 0, 1) | {second_rep.id}
    assert world.bidder_reps[2].id not in {n.user_id for n in rows}  # not registered
    assert world.agent.id not in {n.user_id for n in rows}
    event = db.get_session().get(AuditEvent, rows[0].event_id)
    assert event is not None and event.action == "section.clarification_issued"
    assert rows[0].section_id == section.id and rows[0].read_at is None
    params = rows[0].params
    assert params["clarification_id"] == str(clarification.id)
    assert params["deadline_moved"] is False  # 25 days remained: no move
    assert params["previous_deadline"] == params["new_deadline"]
    assert params["new_deadline"].startswith(deadline.strftime("%Y-%m-%dT%H:%M"))


def test_clarification_late_moves_the_deadline_and_says_so(
    world: World, frozen_clock: Clock
) -> None:
    section = published_section(world)
    _register(world, section, 0)
    old = section.bid_deadline
    assert old is not None
    frozen_clock.move(timedelta(days=15))  # about 10 days remain: the deadline moves
    projects.issue_clarification(world.agent, section, text="更正交货期为60日历天。")
    commit()
    (row,) = _rows(NotificationKind.CLARIFICATION_ISSUED)
    section = db.get_session().get(Section, section.id)
    assert row.params["deadline_moved"] is True
    assert row.params["previous_deadline"] != row.params["new_deadline"]
    assert section is not None and section.bid_deadline is not None
    assert section.bid_deadline > old
    assert row.params["new_deadline"].startswith(section.bid_deadline.strftime("%Y-%m-%dT%H:%M"))


def test_refused_clarification_creates_no_notification(world: World, frozen_clock: Clock) -> None:
    section = published_section(world)
    _register(world, section, 0, 1)
    commit()
    section = db.get_session().get(Section, section.id)
    assert section is not None and section.bid_deadline is not None
    frozen_clock.freeze(section.bid_deadline + timedelta(minutes=1))
    with pytest.raises(DomainError) as refused:
        projects.issue_clarification(world.agent, section, text="截止后的澄清。")
    assert str(refused.value.code) == "bid_deadline_passed"
    db.get_session().rollback()
    assert _rows() == []


def test_rolled_back_clarification_takes_its_notifications_with_it(
    world: World, frozen_clock: Clock
) -> None:
    section = published_section(world)
    _register(world, section, 0, 1)
    commit()
    section = db.get_session().get(Section, section.id)
    assert section is not None
    s = db.get_session()
    with pytest.raises(RuntimeError), s.begin_nested():
        projects.issue_clarification(world.agent, section, text="将被回滚的澄清。")
        assert len(_rows(NotificationKind.CLARIFICATION_ISSUED)) == 2  # same transaction
        raise RuntimeError("the request failed after the service")
    commit()
    assert _rows() == []


def test_objection_pauses_and_the_answer_resumes(world: World, frozen_clock: Clock) -> None:
    section = published_section(world)
    _register(world, section, 0, 1)
    objection = projects.raise_objection(
        world.bidder_reps[0], section, "技术参数第5项指向特定品牌，请予修改。"
    )
    commit()
    paused = _rows(NotificationKind.PROCEDURE_PAUSED)
    managers = {world.agent.id, world.tenderer_rep.id}
    by_audience = {n.user_id: n.params["audience"] for n in paused}
    assert by_audience == {
        world.agent.id: "manager",
        world.tenderer_rep.id: "manager",
        world.bidder_reps[0].id: "bidder",
        world.bidder_reps[1].id: "bidder",
    }
    assert all(n.params["answer_due_at"] for n in paused)

    # a second objection: the managers hear of it, the bidders were told already
    section = _reload(section)
    objection2 = projects.raise_objection(world.bidder_reps[1], section, "评分标准第3项不明确。")
    commit()
    second = [
        n for n in _rows(NotificationKind.PROCEDURE_PAUSED) if n.params["open_objections"] == 2
    ]
    assert {n.user_id for n in second} == managers

    projects.answer_objection(world.agent, projects_objection(objection.id), "已修改为通用参数。")
    commit()
    assert _rows(NotificationKind.PROCEDURE_RESUMED) == []  # one still open: still paused
    projects.answer_objection(world.agent, projects_objection(objection2.id), "已补充说明。")
    commit()
    assert _recipients(NotificationKind.PROCEDURE_RESUMED) == _reps(world, 0, 1)


def projects_objection(objection_id: uuid.UUID):  # type: ignore[no-untyped-def]
    from bidding.projects.models import Objection

    return db.get_session().get(Objection, objection_id)


def test_cancel_tells_the_registered_bidders_the_reason(world: World, frozen_clock: Clock) -> None:
    section = published_section(world)
    _register(world, section, 2)
    projects.cancel_section(world.agent, section, "项目资金未落实，终止本次招标。")
    commit()
    (row,) = _rows(NotificationKind.SECTION_CANCELLED)
    assert row.user_id == world.bidder_reps[2].id
    assert row.params["reason"] == "项目资金未落实，终止本次招标。"


def test_too_few_bids_closes_and_fails_with_the_reason(world: World, frozen_clock: Clock) -> None:
    section = published_section(world)
    _register(world, section, 0, 1)
    close(section, frozen_clock)  # no bids at all
    commit()
    assert _recipients(NotificationKind.BIDS_CLOSED) == _reps(world, 0, 1)
    failed = _rows(NotificationKind.SECTION_FAILED)
    assert {n.user_id for n in failed} == _reps(world, 0, 1) | {
        world.agent.id,
        world.tenderer_rep.id,
    }
    assert "少于3个" in failed[0].params["reason"]


def test_opening_hall_and_record_reach_the_bidders_and_the_staff(
    world: World, frozen_clock: Clock
) -> None:
    section, _bids, _session = opening_with_bids(world, frozen_clock)  # bidders 0, 1, 2
    section_id = section.id
    commit()
    started = _recipients(NotificationKind.OPENING_STARTED)
    staff = {world.agent.id, world.tenderer_rep.id}
    custodians = {world.staff.id, world.supervisor.id, world.agent.id}
    assert started == _reps(world, 0, 1, 2) | staff | custodians
    assert world.bidder_reps[3].id not in started  # no bid, not registered

    section = db.get_session().get(Section, section_id)
    assert section is not None
    for custodian in (world.staff, world.supervisor):
        opening.release_share(custodian, section, share_json(world, section, custodian.id))
        commit()  # k = 2: decrypted eagerly after the commit, the record published
        section = db.get_session().get(Section, section_id)
        assert section is not None
    record = _rows(NotificationKind.OPENING_RECORD_PUBLISHED)
    assert {n.user_id for n in record} == _reps(world, 0, 1, 2) | staff
    session = opening.get_session_of(section)
    assert session is not None and session.record_sha256
    assert {n.params["record_sha256"] for n in record} == {session.record_sha256}
    assert {n.params["bids"] for n in record} == {3}


def test_read_state_is_per_user_and_foreign_ids_are_not_found(
    app: Flask, world: World, frozen_clock: Clock
) -> None:
    section = published_section(world)
    _register(world, section, 0, 1)
    projects.issue_clarification(world.agent, section, text="补充技术参数说明。")
    commit()
    mine = services.notifications_page(world.bidder_reps[0], cursor=None, limit=10).items
    theirs = services.notifications_page(world.bidder_reps[1], cursor=None, limit=10).items
    assert len(mine) == len(theirs) == 1 and mine[0].id != theirs[0].id

    services.mark_read(world.bidder_reps[0], mine[0].id)
    commit()
    assert services.unread_count(world.bidder_reps[0]) == 0
    assert services.unread_count(world.bidder_reps[1]) == 1
    read_events = db.get_session().scalars(
        select(AuditEvent).where(AuditEvent.action == "notification.read")
    )
    assert [e.object_id for e in read_events] == [str(mine[0].id)]
    services.mark_read(world.bidder_reps[0], mine[0].id)  # idempotent, not audited again
    commit()
    assert (
        len(
            list(
                db.get_session().scalars(
                    select(AuditEvent).where(AuditEvent.action == "notification.read")
                )
            )
        )
        == 1
    )

    with pytest.raises(DomainError) as foreign:
        services.mark_read(world.bidder_reps[0], theirs[0].id)
    assert foreign.value.http_status == 404
    with pytest.raises(DomainError):
        services.get_notification(world.bidder_reps[2], theirs[0].id)
    db.get_session().rollback()
    assert services.unread_count(world.bidder_reps[1]) == 1

    assert services.mark_all_read(world.bidder_reps[1]) == 1
    assert services.mark_all_read(world.bidder_reps[1]) == 0
    commit()
    assert services.unread_count(world.bidder_reps[1]) == 0


def test_inactive_users_are_not_notified(world: World, frozen_clock: Clock) -> None:
    section = published_section(world)
    _register(world, section, 0)
    user = db.get_session().get(User, world.bidder_reps[0].id)
    assert user is not None
    user.active = False
    projects.issue_clarification(world.agent, section, text="补充说明。")
    commit()
    assert _rows() == []

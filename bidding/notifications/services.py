"""Notifications to the parties of a section (消息通知): building, reading, rendering.

How messages are made
---------------------
Nothing in the other domains calls this module. It listens to the audit log
(:func:`bidding.core.audit.services.on_event`): when a service records one of the actions
in :data:`ACTIONS`, the listener runs inside that service's transaction, right after the
event row is flushed, and adds one :class:`Notification` per recipient user. The
notification therefore commits together with the state change, or not at all (a refused
clarification leaves no message). Listeners take only the section id from the event and
read everything else (the clarification's deadlines, the cancel reason, who registered)
from the database.

Recipients are resolved at the time of the event: the organisations registered for the
section (and, from the opening on, those whose bids are opened), every active user holding
``bidder_rep`` for one of them; for the kinds where it makes sense also the staff of the
section's tenderer (``tenderer_rep``) and agency (``agency_staff``), and the opening-key
custodians when the opening starts. Who else registered is never revealed in a message.

Text is not stored: a row keeps its kind and parameters, and :func:`render` writes the
title and body through gettext at display time, so ``?lang=en`` shows English.

Delivery is in-app only (消息中心 page and ``/api/v1/notifications``). There is no live
push: the Socket.IO server (``bidding.core.realtime``) has no per-user rooms, only the
opening hall's section rooms; a user sees new messages (and the unread count in the
navbar) on the next page load. Email and SMS (短信) are out of scope.

Reading a message (or all of them) is audited as ``notification.read`` /
``notification.read_all``, so a bidder's acknowledgement of a clarification can be shown
later.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import url_for
from flask_babel import format_datetime
from flask_babel import gettext as _
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from bidding.accounts.models import RoleGrant, User
from bidding.core import db
from bidding.core.audit.models import AuditEvent
from bidding.core.audit.services import on_event, record_event
from bidding.core.clock import isoformat_z, now
from bidding.core.errors import NotFound
from bidding.core.pagination import Page, paginate
from bidding.core.roles import Actor, Role
from bidding.notifications.models import Notification, NotificationKind
from bidding.opening.models import OpeningSession
from bidding.projects.models import Clarification, Objection, ObjectionStatus, Registration, Section

log = logging.getLogger(__name__)

__all__ = [
    "ACTIONS",
    "Rendered",
    "get_notification",
    "mark_all_read",
    "mark_read",
    "notifications_page",
    "render",
    "unread_count",
]

#: Audit actions that notify, and the kind each one produces.
ACTIONS: dict[str, NotificationKind] = {
    "section.clarification_issued": NotificationKind.CLARIFICATION_ISSUED,
    "section.objection_raised": NotificationKind.PROCEDURE_PAUSED,
    "section.objection_answered": NotificationKind.PROCEDURE_RESUMED,
    "section.cancelled": NotificationKind.SECTION_CANCELLED,
    "section.closed": NotificationKind.BIDS_CLOSED,
    "opening.started": NotificationKind.OPENING_STARTED,
    "section.failed": NotificationKind.SECTION_FAILED,
    "opening.completed": NotificationKind.OPENING_RECORD_PUBLISHED,
}


def _session() -> Session:
    return db.get_session()


def _iso(value: datetime | None) -> str | None:
    return isoformat_z(value) if value is not None else None


# =========================================================================== recipients


def _registered_orgs(section: Section) -> set[uuid.UUID]:
    return set(
        _session().scalars(
            select(Registration.bidder_id).where(Registration.section_id == section.id)
        )
    )


def _opened_orgs(section: Section) -> set[uuid.UUID]:
    """Organisations with a bid in the section's opening (registered or not)."""
    session = (
        _session()
        .scalars(select(OpeningSession).where(OpeningSession.section_id == section.id))
        .first()
    )
    return {r.bidder_id for r in session.results} if session is not None else set()


def _users_holding(role: Role, org_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    wanted = {o for o in org_ids if o is not None}
    if not wanted:
        return set()
    return set(
        _session().scalars(
            select(RoleGrant.user_id)
            .join(User, User.id == RoleGrant.user_id)
            .where(
                RoleGrant.role == role,
                RoleGrant.organisation_id.in_(wanted),
                User.active.is_(True),
            )
        )
    )


def _bidder_users(org_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    return _users_holding(Role.BIDDER_REP, org_ids)


def _manager_users(section: Section) -> set[uuid.UUID]:
    """The tenderer's representatives and the agency's staff of the section's project."""
    project = section.project
    users = _users_holding(Role.TENDERER_REP, [project.tenderer_id])
    if project.agency_id is not None:
        users |= _users_holding(Role.AGENCY_STAFF, [project.agency_id])
    return users


def _custodian_users(section: Section) -> set[uuid.UUID]:
    active = set(
        _session().scalars(
            select(User.id).where(
                User.id.in_([c.user_id for c in section.custodians]), User.active.is_(True)
            )
        )
    )
    return active


# =========================================================================== building


def _section_of(event: AuditEvent) -> Section | None:
    if event.object_type != "section" or not event.object_id:
        log.warning("notification: %s on %s has no section", event.action, event.object_type)
        return None
    try:
        section_id = uuid.UUID(event.object_id)
    except ValueError:
        log.warning("notification: %s names a malformed section id", event.action)
        return None
    return _session().get(Section, section_id)


def _on_section_event(
    action: str,
) -> Callable[[Callable[[AuditEvent, Section], None]], Callable[[AuditEvent], None]]:
    """Register a listener of a section's event; it runs only when the event names a
    section that exists (looked up from the event, never from its payload)."""

    def register(fn: Callable[[AuditEvent, Section], None]) -> Callable[[AuditEvent], None]:
        @on_event(action)
        def listener(event: AuditEvent) -> None:
            section = _section_of(event)
            if section is not None:
                fn(event, section)

        return listener

    return register


def _notify(
    event: AuditEvent,
    kind: NotificationKind,
    section: Section,
    users: Iterable[uuid.UUID],
    params: dict[str, Any],
) -> int:
    """Add one notification per user (once per event and user); returns how many."""
    s = _session()
    already = set(s.scalars(select(Notification.user_id).where(Notification.event_id == event.id)))
    at = now()
    rows = [
        {
            "id": uuid.uuid4(),
            "user_id": user_id,
            "kind": kind,
            "section_id": section.id,
            "event_id": event.id,
            "params": dict(params),
            "created_at": at,
        }
        for user_id in sorted(set(users) - already)
    ]
    if rows:  # one multi-row INSERT (an opening record goes to every bidder at once)
        s.execute(insert(Notification), rows)
    return len(rows)


@_on_section_event("section.clarification_issued")
def _on_clarification(event: AuditEvent, section: Section) -> None:
    raw = (event.data or {}).get("clarification_id")
    clarification = _session().get(Clarification, uuid.UUID(str(raw))) if raw else None
    if clarification is None or clarification.section_id != section.id:
        log.warning("notification: clarification %s not found on section %s", raw, section.id)
        return
    params = {
        "clarification_id": str(clarification.id),
        "affects_bids": clarification.affects_bids,
        "deadline_moved": clarification.new_deadline != clarification.previous_deadline,
        "previous_deadline": _iso(clarification.previous_deadline),
        "new_deadline": _iso(clarification.new_deadline),
        "has_document": clarification.document_id is not None,
    }
    _notify(
        event,
        NotificationKind.CLARIFICATION_ISSUED,
        section,
        _bidder_users(_registered_orgs(section)),
        params,
    )


def _open_objections(section: Section) -> list[Objection]:
    return list(
        _session().scalars(
            select(Objection)
            .where(Objection.section_id == section.id, Objection.status == ObjectionStatus.OPEN)
            .order_by(Objection.answer_due_at)
        )
    )


@_on_section_event("section.objection_raised")
def _on_objection_raised(event: AuditEvent, section: Section) -> None:
    """The tenderer and agency learn of every objection (they must answer within 3 days);
    the registered bidders learn that the procedure is paused, when it becomes paused."""
    open_now = _open_objections(section)
    if not open_now:
        return
    due = _iso(open_now[0].answer_due_at)
    managers = _manager_users(section)
    _notify(
        event,
        NotificationKind.PROCEDURE_PAUSED,
        section,
        managers,
        {"audience": "manager", "answer_due_at": due, "open_objections": len(open_now)},
    )
    if len(open_now) == 1:  # this objection paused the procedure
        bidders = _bidder_users(_registered_orgs(section)) - managers
        _notify(
            event,
            NotificationKind.PROCEDURE_PAUSED,
            section,
            bidders,
            {"audience": "bidder", "answer_due_at": due, "open_objections": 1},
        )


@_on_section_event("section.objection_answered")
def _on_objection_answered(event: AuditEvent, section: Section) -> None:
    """Every objection answered: the registered bidders learn the procedure resumes."""
    if _open_objections(section):
        return
    _notify(
        event,
        NotificationKind.PROCEDURE_RESUMED,
        section,
        _bidder_users(_registered_orgs(section)),
        {"bid_deadline": _iso(section.bid_deadline)},
    )


@_on_section_event("section.cancelled")
def _on_cancelled(event: AuditEvent, section: Section) -> None:
    users = _bidder_users(_registered_orgs(section) | _opened_orgs(section))
    _notify(
        event,
        NotificationKind.SECTION_CANCELLED,
        section,
        users,
        {"reason": section.cancel_reason or ""},
    )


@_on_section_event("section.closed")
def _on_closed(event: AuditEvent, section: Section) -> None:
    _notify(
        event,
        NotificationKind.BIDS_CLOSED,
        section,
        _bidder_users(_registered_orgs(section)),
        {"closed_at": _iso(section.closed_at)},
    )


@_on_section_event("opening.started")
def _on_opening_started(event: AuditEvent, section: Section) -> None:
    """Bidders, the tenderer and agency, and the custodians (who must release their key
    shares) are told the opening hall is open."""
    users = (
        _bidder_users(_registered_orgs(section) | _opened_orgs(section))
        | _manager_users(section)
        | _custodian_users(section)
    )
    _notify(event, NotificationKind.OPENING_STARTED, section, users, {})


@_on_section_event("section.failed")
def _on_failed(event: AuditEvent, section: Section) -> None:
    users = _bidder_users(_registered_orgs(section) | _opened_orgs(section)) | _manager_users(
        section
    )
    _notify(
        event,
        NotificationKind.SECTION_FAILED,
        section,
        users,
        {"reason": section.failure_reason or ""},
    )


@_on_section_event("opening.completed")
def _on_opening_completed(event: AuditEvent, section: Section) -> None:
    """The opening record is published to all bidders (DZ20 30) and the section's staff."""
    session = (
        _session()
        .scalars(select(OpeningSession).where(OpeningSession.section_id == section.id))
        .first()
    )
    if session is None or session.record_sha256 is None:
        log.warning("notification: section %s has no published opening record", section.id)
        return
    users = _bidder_users(_registered_orgs(section) | _opened_orgs(section)) | _manager_users(
        section
    )
    _notify(
        event,
        NotificationKind.OPENING_RECORD_PUBLISHED,
        section,
        users,
        {"record_sha256": session.record_sha256, "bids": len(session.results)},
    )


# =========================================================================== reading


def _mine(actor: Actor, *, unread: bool | None = None) -> Any:
    stmt = select(Notification).where(Notification.user_id == actor.id)
    if unread is True:
        stmt = stmt.where(Notification.read_at.is_(None))
    elif unread is False:
        stmt = stmt.where(Notification.read_at.is_not(None))
    return stmt


def notifications_page(
    actor: Actor, *, cursor: str | None, limit: int, unread: bool | None = None
) -> Page[Notification]:
    """The actor's own notifications, newest first; ``unread`` True/False filters."""
    return paginate(
        _session(),
        _mine(actor, unread=unread),
        (Notification.created_at, Notification.id),
        cursor=cursor,
        limit=limit,
        descending=True,
    )


def unread_count(actor: Actor) -> int:
    return int(
        _session().scalar(
            select(func.count(Notification.id)).where(
                Notification.user_id == actor.id, Notification.read_at.is_(None)
            )
        )
        or 0
    )


def get_notification(actor: Actor, notification_id: uuid.UUID) -> Notification:
    """One of the actor's notifications; another user's (or none) → ``not_found`` (404)."""
    row = _session().get(Notification, notification_id)
    if row is None or row.user_id != actor.id:
        raise NotFound(_("该消息不存在或不属于您。"))
    return row


def mark_read(actor: Actor, notification_id: uuid.UUID) -> Notification:
    """Mark one of the actor's notifications read (idempotent: a second call changes
    nothing and records nothing). Refusal: ``not_found``."""
    row = get_notification(actor, notification_id)
    if row.read_at is not None:
        return row
    row.read_at = now()
    _session().flush()
    record_event(
        actor,
        "notification.read",
        "notification",
        row.id,
        {"kind": str(row.kind), "section_id": row.section_id, "event_id": row.event_id},
    )
    return row


def mark_all_read(actor: Actor) -> int:
    """Mark every unread notification of the actor read; returns how many changed."""
    s = _session()
    ids = list(
        s.scalars(
            select(Notification.id)
            .where(Notification.user_id == actor.id, Notification.read_at.is_(None))
            .order_by(Notification.created_at, Notification.id)
        )
    )
    if not ids:
        return 0
    s.execute(
        update(Notification)
        .where(Notification.id.in_(ids), Notification.read_at.is_(None))
        .values(read_at=now())
        .execution_options(synchronize_session="fetch")
    )
    s.flush()
    record_event(actor, "notification.read_all", "user", actor.id, {"count": len(ids), "ids": ids})
    return len(ids)


# =========================================================================== rendering


@dataclass(frozen=True)
class Rendered:
    """A notification's text in the current language, and where it leads."""

    title: str
    body: str
    link: str | None
    link_label: str | None


def _time(value: str | None) -> str:
    if not value:
        return "—"
    return str(
        format_datetime(datetime.fromisoformat(value.replace("Z", "+00:00")), "yyyy-MM-dd HH:mm")
    )


def _section_url(section: Section) -> str:
    return url_for("projects.section", project_id=section.project_id, section_id=section.id)


def _hall_url(section: Section) -> str:
    return url_for("opening.hall", section_id=section.id)


def render(row: Notification) -> Rendered:
    """Title, body and link of ``row`` in the request's language (needs a request or app
    context for gettext and url_for)."""
    p = row.params or {}
    section = row.section
    name = (
        _("“%(name)s”（标段编号 %(code)s）", name=section.name, code=section.code)
        if section is not None
        else _("（标段已不存在）")
    )
    section_link = _section_url(section) if section is not None else None
    hall_link = _hall_url(section) if section is not None else None
    kind = row.kind
    if kind is NotificationKind.CLARIFICATION_ISSUED:
        if p.get("deadline_moved"):
            deadline = _(
                "投标截止时间由 %(old)s 顺延至 %(new)s（发出时距截止不足15日，依法顺延）。",
                old=_time(p.get("previous_deadline")),
                new=_time(p.get("new_deadline")),
            )
        else:
            deadline = _(
                "投标截止时间不变，仍为 %(deadline)s。", deadline=_time(p.get("new_deadline"))
            )
        body = " ".join(
            part
            for part in (
                _(
                    "招标人对标段%(section)s发出了澄清或修改，请及时查阅并据此编制投标文件。",
                    section=name,
                ),
                deadline,
                _("附有澄清或修改文件。") if p.get("has_document") else "",
            )
            if part
        )
        return Rendered(_("澄清/修改通知"), body, section_link, _("查看标段"))
    if kind is NotificationKind.PROCEDURE_PAUSED:
        if p.get("audience") == "manager":
            body = _(
                "标段%(section)s收到投标人对招标文件的异议，招标投标活动暂停。"
                "请在 %(due)s 前作出答复（《招标投标法实施条例》第二十二条）。",
                section=name,
                due=_time(p.get("answer_due_at")),
            )
        else:
            body = _(
                "有投标人对标段%(section)s的招标文件提出异议，招标投标活动暂停，"
                "待招标人答复后恢复；暂停期间标段不截标。",
                section=name,
            )
        return Rendered(_("异议：招标投标活动暂停"), body, section_link, _("查看标段"))
    if kind is NotificationKind.PROCEDURE_RESUMED:
        body = _(
            "标段%(section)s的异议已全部答复，招标投标活动恢复。投标截止时间为 %(deadline)s。",
            section=name,
            deadline=_time(p.get("bid_deadline")),
        )
        return Rendered(_("异议已答复：招标投标活动恢复"), body, section_link, _("查看答复"))
    if kind is NotificationKind.SECTION_CANCELLED:
        body = _(
            "标段%(section)s已终止招标。终止理由：%(reason)s",
            section=name,
            reason=p.get("reason") or "—",
        )
        return Rendered(_("终止招标通知"), body, section_link, _("查看标段"))
    if kind is NotificationKind.BIDS_CLOSED:
        body = _(
            "标段%(section)s已于 %(at)s 投标截止，此后不再接收投标文件。开标将在开标大厅进行。",
            section=name,
            at=_time(p.get("closed_at")),
        )
        return Rendered(_("投标已截止"), body, section_link, _("查看标段"))
    if kind is NotificationKind.OPENING_STARTED:
        body = _(
            "标段%(section)s的开标大厅已开启。投标人请进入开标大厅签到并关注解密进度；"
            "密钥保管人请及时释放密钥份额。",
            section=name,
        )
        return Rendered(_("开标大厅已开启"), body, hall_link, _("进入开标大厅"))
    if kind is NotificationKind.SECTION_FAILED:
        body = _(
            "标段%(section)s流标。原因：%(reason)s",
            section=name,
            reason=p.get("reason") or "—",
        )
        return Rendered(_("流标通知"), body, section_link, _("查看标段"))
    if kind is NotificationKind.OPENING_RECORD_PUBLISHED:
        body = _(
            "标段%(section)s开标结束，已签名的开标记录已发布（共 %(bids)s 份投标文件），"
            "可在开标大厅查阅并下载核验。",
            section=name,
            bids=p.get("bids", "—"),
        )
        return Rendered(_("开标记录已发布"), body, hall_link, _("查看开标记录"))
    return Rendered(str(kind), "", section_link, None)  # pragma: no cover - all kinds above

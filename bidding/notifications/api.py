"""The notifications API: the caller's own inbox (消息中心).

=============================================  ==========================================
``GET  /api/v1/notifications``                 newest first, cursor-paginated,
                                               ``?unread=true|false``; text rendered in
                                               the request's language (``?lang=en``)
``POST /api/v1/notifications/{id}/read``       mark one read (idempotent)
``POST /api/v1/notifications/read-all``        mark every unread one read
=============================================  ==========================================

Every call is about the caller's own messages: another user's id answers 404.
"""

from __future__ import annotations

import uuid
from typing import Any

from apiflask import APIBlueprint
from flask import Flask

from bidding.core.auth import current_actor, token_auth
from bidding.core.roles import Actor
from bidding.notifications import schemas, services
from bidding.notifications.models import Notification

bp = APIBlueprint(
    "notifications_api", __name__, url_prefix="/api/v1/notifications", tag="Notifications"
)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def _actor() -> Actor:
    actor = current_actor()
    assert actor is not None  # guaranteed by auth_required
    return actor


def notification_dict(row: Notification) -> dict[str, Any]:
    text = services.render(row)
    return {
        "id": row.id,
        "kind": str(row.kind),
        "params": row.params or {},
        "title": text.title,
        "body": text.body,
        "link": text.link,
        "section_id": row.section_id,
        "project_id": row.section.project_id if row.section is not None else None,
        "event_id": row.event_id,
        "created_at": row.created_at,
        "read_at": row.read_at,
        "unread": row.read_at is None,
    }


@bp.get("")
@bp.auth_required(token_auth)
@bp.input(schemas.NotificationQuery, location="query", arg_name="query")
@bp.output(schemas.NotificationPage)
def list_notifications(query: dict[str, Any]) -> dict[str, Any]:
    """Your notifications, newest first."""
    actor = _actor()
    page = services.notifications_page(
        actor, cursor=query["cursor"], limit=query["limit"], unread=query["unread"]
    )
    return {
        "items": [notification_dict(n) for n in page.items],
        "next_cursor": page.next_cursor,
        "unread_count": services.unread_count(actor),
    }


@bp.post("/<uuid:notification_id>/read")
@bp.auth_required(token_auth)
@bp.output(schemas.NotificationOut)
def read_notification(notification_id: uuid.UUID) -> dict[str, Any]:
    """Mark one of your notifications read (404 if it is not yours)."""
    return notification_dict(services.mark_read(_actor(), notification_id))


@bp.post("/read-all")
@bp.auth_required(token_auth)
@bp.output(schemas.ReadAllOut)
def read_all() -> dict[str, Any]:
    """Mark all your unread notifications read."""
    actor = _actor()
    marked = services.mark_all_read(actor)
    return {"marked": marked, "unread_count": services.unread_count(actor)}

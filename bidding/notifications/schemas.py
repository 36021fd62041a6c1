"""Request and response schemas of the notifications API (times ISO 8601 UTC with ``Z``)."""

from __future__ import annotations

from apiflask import Schema
from apiflask.fields import UUID, Boolean, Dict, Integer, List, Nested, String
from apiflask.validators import OneOf, Range

from bidding.core.pagination import DEFAULT_LIMIT, MAX_LIMIT
from bidding.notifications.models import NotificationKind
from bidding.projects.schemas import UTCDateTime


class NotificationQuery(Schema):
    """``GET /api/v1/notifications`` query parameters."""

    cursor = String(load_default=None, metadata={"description": "next_cursor of the previous page"})
    limit = Integer(
        load_default=DEFAULT_LIMIT,
        validate=Range(min=1, max=MAX_LIMIT),
        metadata={"description": f"page size, 1–{MAX_LIMIT}"},
    )
    unread = Boolean(
        load_default=None,
        allow_none=True,
        metadata={"description": "true: unread only; false: read only; absent: all"},
    )


class NotificationOut(Schema):
    id = UUID(required=True)
    kind = String(required=True, validate=OneOf([k.value for k in NotificationKind]))
    params = Dict(
        required=True, metadata={"description": "the parameters of the text (times in UTC)"}
    )
    title = String(required=True, metadata={"description": "rendered in the request's language"})
    body = String(required=True, metadata={"description": "rendered in the request's language"})
    link = String(allow_none=True, metadata={"description": "page the message leads to"})
    section_id = UUID(allow_none=True)
    project_id = UUID(allow_none=True)
    event_id = UUID(required=True, metadata={"description": "the audit event that caused it"})
    created_at = UTCDateTime(required=True)
    read_at = UTCDateTime(allow_none=True)
    unread = Boolean(required=True)


class NotificationItem(NotificationOut):
    """NotificationOut nested in a page (a distinct class keeps OpenAPI components unique)."""


class NotificationPage(Schema):
    items = List(Nested(NotificationItem), required=True)
    next_cursor = String(
        allow_none=True,
        metadata={"description": "pass as ?cursor= for the next page; null at the end"},
    )
    unread_count = Integer(required=True, metadata={"description": "all unread, every page"})


class ReadAllOut(Schema):
    marked = Integer(required=True, metadata={"description": "how many were unread"})
    unread_count = Integer(required=True)

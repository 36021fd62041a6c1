"""Cursor (keyset) pagination (分页) for every list in the API.

A list is ordered by a unique key (e.g. ``(Organisation.name, Organisation.id)``); the
cursor is the key of the last row sent, encoded as opaque URL-safe text, so pages are stable
while rows are added and no client can jump by offset::

    page = paginate(session, select(Organisation), (Organisation.name, Organisation.id),
                    cursor=args.get("cursor"), limit=args["limit"])
    return {"items": page.items, "next_cursor": page.next_cursor}

In an APIFlask view, declare ``@bp.input(PageQuery, location="query")`` and
``@bp.output(page_schema(ItemSchema))``.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

from apiflask import Schema
from apiflask.fields import Integer, List, Nested, String
from apiflask.validators import Range
from flask_babel import gettext as _
from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute, Session

from bidding.core.errors import BadRequest, ErrorCode

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
INVALID_CURSOR = ErrorCode.INVALID_CURSOR


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of rows and the cursor of the next page (``None`` on the last page)."""

    items: list[T]
    next_cursor: str | None


class PageQuery(Schema):
    """Query parameters of every list endpoint."""

    cursor = String(load_default=None, metadata={"description": "next_cursor of the previous page"})
    limit = Integer(
        load_default=DEFAULT_LIMIT,
        validate=Range(min=1, max=MAX_LIMIT),
        metadata={"description": f"page size, 1–{MAX_LIMIT}"},
    )


_PAGE_SCHEMAS: dict[type[Schema], type[Schema]] = {}


def page_schema(item: type[Schema]) -> type[Schema]:
    """An output schema ``{items: [item], next_cursor}`` for ``item`` (cached per item)."""
    if item not in _PAGE_SCHEMAS:
        name = item.__name__.removesuffix("Schema").removesuffix("Out") + "Page"
        # A subclass of its own: APIFlask 3.1 would otherwise register ``item`` twice when
        # it is also a top-level body elsewhere.
        nested = type(item.__name__ + "Item", (item,), {})
        _PAGE_SCHEMAS[item] = type(
            name,
            (Schema,),
            {
                "items": List(Nested(nested), required=True),
                "next_cursor": String(
                    allow_none=True,
                    metadata={"description": "pass as ?cursor= for the next page; null at the end"},
                ),
            },
        )
    return _PAGE_SCHEMAS[item]


def _encode_value(value: Any) -> list[Any]:
    if isinstance(value, datetime):
        return ["d", value.isoformat()]
    if isinstance(value, uuid.UUID):
        return ["u", value.hex]
    if isinstance(value, Decimal):
        return ["m", str(value)]
    if value is None or isinstance(value, str | int | float | bool):
        return ["v", value]
    if hasattr(value, "value"):  # enums
        return ["v", value.value]
    raise TypeError(f"cannot put {type(value).__name__} in a cursor")


def _decode_value(item: Any) -> Any:
    if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
        raise ValueError("bad cursor item")
    tag, raw = item
    if tag == "d":
        return datetime.fromisoformat(raw)
    if tag == "u":
        return uuid.UUID(hex=raw)
    if tag == "m":
        return Decimal(raw)
    if tag == "v":
        return raw
    raise ValueError("bad cursor tag")


def encode_cursor(values: Sequence[Any]) -> str:
    text = json.dumps([_encode_value(v) for v in values], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[Any]:
    """The key values in ``cursor``; a tampered or foreign cursor → 400 ``invalid_cursor``."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(raw, list) or len(raw) != size:
            raise ValueError("wrong size")
        return [_decode_value(item) for item in raw]
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
        raise BadRequest(
            _("分页游标无效，请从第一页重新查询。"),
            code=INVALID_CURSOR,
        ) from None


def paginate(
    session: Session,
    stmt: Select[Any],
    key: Sequence[InstrumentedAttribute[Any]],
    *,
    cursor: str | None,
    limit: int,
    descending: bool = False,
) -> Page[Any]:
    """Run ``stmt`` (selecting one entity) ordered by ``key`` after ``cursor``.

    ``key`` must be unique over the rows (end it with the primary key).
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(
            _("每页条数须在 1 到 %(max)s 之间。", max=MAX_LIMIT), details={"limit": limit}
        )
    if cursor:
        values = decode_cursor(cursor, len(key))
        clauses = []
        for i, col in enumerate(key):
            prefix = [key[j] == values[j] for j in range(i)]
            step = col < values[i] if descending else col > values[i]
            clauses.append(and_(*prefix, step))
        stmt = stmt.where(or_(*clauses))
    order = [c.desc() if descending else c.asc() for c in key]
    rows = list(session.scalars(stmt.order_by(*order).limit(limit + 1)))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor([getattr(last, c.key) for c in key])
    return Page(items=rows, next_cursor=next_cursor)

"""Idempotent retries (幂等请求) for creating calls: the ``Idempotency-Key`` header.

A client that may retry a create/publish sends ``Idempotency-Key: <random string>``. The
first request with that key (per actor and endpoint) runs and its response is stored in
the same transaction as its effects; a retry with the same key and the same body gets the
stored response back without running again; the same key with a different body is
refused with 422 ``idempotency_key_reused``. A request that fails (status ≥ 400) stores
nothing (its transaction rolls back), so it may be retried with the same key.

Concurrency: the key row is inserted (reserved) before the view runs; on PostgreSQL a
concurrent request with the same key waits on the unique index and then gets 409
``idempotency_key_in_progress`` instead of running twice.

Usage in an APIFlask view — put :func:`idempotent` directly under the route decorator::

    @bp.post("/things")
    @idempotent("things.create")
    @bp.input(IdempotencyHeaders, location="headers", arg_name="idem")  # documents the header
    @bp.input(ThingIn, arg_name="data")
    @bp.output(ThingOut, status_code=201)
    def create_thing(data, idem): ...
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from apiflask import Schema
from apiflask.fields import String
from apiflask.validators import Length
from flask import Response, request
from flask_babel import gettext as _
from sqlalchemy import Integer, UniqueConstraint, select
from sqlalchemy import String as SAString
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from bidding.core import db
from bidding.core.clock import now
from bidding.core.db import Base, IdMixin
from bidding.core.errors import Conflict, ErrorCode, RuleViolation

__all__ = [
    "HEADER",
    "IdempotencyHeaders",
    "IdempotencyRecord",
    "begin",
    "complete",
    "idempotent",
    "request_hash",
]

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 128

P = ParamSpec("P")
R = TypeVar("R")


class IdempotencyRecord(IdMixin, Base):
    """One remembered idempotent request and its first response."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("actor_id", "endpoint", "key"),)

    key: Mapped[str] = mapped_column(SAString(MAX_KEY_LENGTH))
    #: the acting user (the nil UUID for anonymous callers).
    actor_id: Mapped[uuid.UUID]
    endpoint: Mapped[str] = mapped_column(SAString(200))
    request_hash: Mapped[str] = mapped_column(SAString(64))
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=now)


class IdempotencyHeaders(Schema):
    """The optional ``Idempotency-Key`` header (documented in the OpenAPI spec)."""

    idempotency_key = String(
        data_key=HEADER,
        load_default=None,
        validate=Length(min=1, max=MAX_KEY_LENGTH),
        metadata={"description": "a retry with the same key returns the first result"},
    )


def request_hash(method: str, path: str, body: bytes) -> str:
    """SHA-256 over the method, path and raw body (the request's identity)."""
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _key_reused() -> RuleViolation:
    return RuleViolation(
        _("该幂等键已用于另一个不同内容的请求，请为新请求使用新的 Idempotency-Key。"),
        code=ErrorCode.IDEMPOTENCY_KEY_REUSED,
    )


def begin(
    session: Session, actor_id: uuid.UUID, endpoint: str, key: str, req_hash: str
) -> tuple[IdempotencyRecord, bool]:
    """Find or reserve the record for ``key``; return ``(record, replay)``.

    ``replay`` is true when a completed first response exists (return it as is). Raises
    422 ``idempotency_key_reused`` if the stored request differs, 409
    ``idempotency_key_in_progress`` when another request holds the key.
    """
    if not key or len(key) > MAX_KEY_LENGTH:
        raise RuleViolation(
            _("Idempotency-Key 长度须为 1 到 %(n)s 个字符。", n=MAX_KEY_LENGTH),
            code=ErrorCode.VALIDATION_ERROR,
        )
    stmt = select(IdempotencyRecord).where(
        IdempotencyRecord.actor_id == actor_id,
        IdempotencyRecord.endpoint == endpoint,
        IdempotencyRecord.key == key,
    )
    found = session.scalars(stmt).first()
    if found is None:
        record = IdempotencyRecord(
            key=key, actor_id=actor_id, endpoint=endpoint, request_hash=req_hash
        )
        # No savepoint: a conflict fails the whole request anyway (and pysqlite would
        # commit a savepoint released outside an explicit BEGIN).
        try:
            session.add(record)
            session.flush()
        except IntegrityError:
            session.rollback()
            raise Conflict(
                _("相同 Idempotency-Key 的请求正在处理中，请稍后重试。"),
                code=ErrorCode.IDEMPOTENCY_KEY_IN_PROGRESS,
            ) from None
        return record, False
    if found.request_hash != req_hash:
        raise _key_reused()
    if found.response_status is None:
        raise Conflict(
            _("相同 Idempotency-Key 的请求正在处理中，请稍后重试。"),
            code=ErrorCode.IDEMPOTENCY_KEY_IN_PROGRESS,
        )
    return found, True


def complete(record: IdempotencyRecord, status: int, body: dict[str, Any] | None) -> None:
    """Store the first response (in the same transaction as the request's effects)."""
    record.response_status = status
    record.response_body = body


def _split(rv: Any) -> tuple[Response | None, int, Any]:
    if isinstance(rv, Response):
        return rv, rv.status_code, None
    if isinstance(rv, tuple):
        body = rv[0]
        status = rv[1] if len(rv) > 1 and isinstance(rv[1], int) else 200
        if isinstance(body, Response):
            return body, status, None
        return None, status, body
    return None, 200, rv


def _default_actor_id() -> uuid.UUID | None:
    from bidding.core.auth import current_actor

    actor = current_actor()
    return actor.id if actor is not None else None


def idempotent(
    endpoint: str, actor_id_of: Callable[[], uuid.UUID | None] | None = None
) -> Callable[[Callable[P, R]], Callable[P, Any]]:
    """Decorate a view so that ``Idempotency-Key`` retries return the first response.

    Place it directly below the route decorator (above ``@input``/``@output``) so that it
    sees the serialised response. Without the header the view simply runs.
    """

    def decorator(view: Callable[P, R]) -> Callable[P, Any]:
        @wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            key = request.headers.get(HEADER)
            if key is None:
                return view(*args, **kwargs)
            getter = actor_id_of or _default_actor_id
            actor_id = getter() or uuid.UUID(int=0)
            req_hash = request_hash(request.method, request.path, request.get_data())
            session = db.get_session()
            record, replay = begin(session, actor_id, endpoint, key.strip(), req_hash)
            if replay:
                response = Response(
                    json.dumps(record.response_body, ensure_ascii=False),
                    status=record.response_status or 200,
                    mimetype="application/json",
                )
                response.headers["Idempotent-Replayed"] = "true"
                return response
            rv = view(*args, **kwargs)
            response_obj, status, raw = _split(rv)
            if status < 400:
                if response_obj is not None:
                    body = response_obj.get_json(silent=True)
                else:
                    body = raw if isinstance(raw, dict) else {"value": raw}
                complete(record, status, body if isinstance(body, dict) else {"value": body})
                session.flush()
            return rv

        return wrapper

    return decorator

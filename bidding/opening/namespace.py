"""The opening hall's Socket.IO namespace ``/opening`` (开标大厅实时通道).

* Connect: a signed-in user (the Flask-Login session cookie of the handshake) with a
  relation to the section (``auth={"section_id": …}`` or ``?section_id=…``); refused
  otherwise. The server chooses the room (``opening:<section id>``) and sends the current
  state (``hall_state``).
* Client → server: ``sign_in``, ``raise_objection`` ``{text}``, ``answer_objection``
  ``{objection_id, answer}``; acks ``{"ok": true, …}`` or ``{"ok": false, "code",
  "message"}`` with the HTTP API's codes. Rights are re-read from the database on every
  event (the user is reloaded, the relation recomputed); a socket that lost its relation
  is disconnected.
* Server → client (past tense): ``bidder_signed_in``, ``share_released``,
  ``bid_decrypted``, ``opening_state_changed``, ``opening_completed``, ``objection_raised``,
  ``objection_answered`` — emitted after the transaction commits, from web nodes and from
  Celery workers alike through the message queue.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from flask import Flask, request, session
from flask_babel import gettext as _
from flask_socketio import ConnectionRefusedError, Namespace, disconnect, emit, join_room

from bidding.core import db
from bidding.core.errors import DomainError, ErrorCode, Forbidden, NotFound
from bidding.core.roles import Actor
from bidding.opening import services
from bidding.opening.models import OpeningObjection
from bidding.projects.models import Section

HALL_STATE = "hall_state"

_connections: dict[str, tuple[uuid.UUID, uuid.UUID]] = {}  # sid → (section id, user id)
_lock = threading.Lock()


def _load_actor() -> Actor | None:
    """The user of the handshake's session cookie, reloaded from the database now."""
    from bidding.accounts.services import actor_for_user, load_session_user

    user_id = session.get("_user_id")
    if not user_id:
        return None
    user = load_session_user(str(user_id))
    return actor_for_user(user) if user is not None else None


def _sid() -> str:
    return str(request.sid)  # type: ignore[attr-defined]


def _refusal(err: DomainError) -> dict[str, Any]:
    return {"ok": False, "code": str(err.code), "message": err.message}


class OpeningNamespace(Namespace):  # type: ignore[misc]
    def on_connect(self, auth: Any = None) -> None:
        raw = (auth or {}).get("section_id") if isinstance(auth, dict) else None
        raw = raw or request.args.get("section_id")
        try:
            section_id = uuid.UUID(str(raw))
        except ValueError:
            raise ConnectionRefusedError({"code": "bad_request", "message": "section_id"}) from None
        with db.session_scope():
            actor = _load_actor()
            if actor is None:
                raise ConnectionRefusedError(
                    {"code": ErrorCode.NOT_SIGNED_IN, "message": _("请先登录。")}
                )
            section = db.get_session().get(Section, section_id)
            if section is None or services.capacity_of(actor, section) is None:
                raise ConnectionRefusedError(
                    {"code": ErrorCode.NOT_IN_OPENING, "message": _("您不是本标段开标的参与方。")}
                )
            state = services.hall_state(actor, section)
        with _lock:
            _connections[_sid()] = (section_id, actor.id)
        join_room(services.room_of(section_id))
        emit(HALL_STATE, state)  # to this client only

    def on_disconnect(self, reason: Any = None) -> None:
        with _lock:
            _connections.pop(_sid(), None)

    def _run(self, action: Any) -> dict[str, Any]:
        with _lock:
            seat = _connections.get(_sid())
        if seat is None:
            return {"ok": False, "code": ErrorCode.NOT_SIGNED_IN, "message": _("请先登录。")}
        section_id, user_id = seat
        try:
            with db.session_scope():
                actor = _load_actor()
                section = db.get_session().get(Section, section_id)
                if actor is None or actor.id != user_id or section is None:
                    raise Forbidden(_("登录状态已失效。"), code=ErrorCode.NOT_SIGNED_IN)
                if services.capacity_of(actor, section) is None:
                    disconnect()
                    raise Forbidden(_("您不是本标段开标的参与方。"), code=ErrorCode.NOT_IN_OPENING)
                reply: dict[str, Any] = action(actor, section)
        except DomainError as err:
            return _refusal(err)
        return {"ok": True, **reply}

    def on_sign_in(self, data: Any = None) -> dict[str, Any]:
        return self._run(
            lambda actor, section: services.sign_in_view(services.sign_in(actor, section))
        )

    def on_raise_objection(self, data: Any = None) -> dict[str, Any]:
        text = str((data or {}).get("text", "")) if isinstance(data, dict) else ""

        def act(actor: Actor, section: Section) -> dict[str, Any]:
            return services.objection_view(services.raise_objection(actor, section, text))

        return self._run(act)

    def on_answer_objection(self, data: Any = None) -> dict[str, Any]:
        data = data if isinstance(data, dict) else {}

        def act(actor: Actor, section: Section) -> dict[str, Any]:
            try:
                oid = uuid.UUID(str(data.get("objection_id")))
            except ValueError:
                raise NotFound(_("请求的资源不存在或您无权查看。")) from None
            objection = db.get_session().get(OpeningObjection, oid)
            if objection is None or objection.session.section_id != section.id:
                raise NotFound(_("请求的资源不存在或您无权查看。"))
            answer = str(data.get("answer", ""))
            return services.objection_view(services.answer_objection(actor, objection, answer))

        return self._run(act)


def init_app(app: Flask) -> None:
    from bidding.core.realtime import socketio

    socketio.on_namespace(OpeningNamespace(services.NAMESPACE))

"""The message center page (消息中心) and the navbar entry with the unread count.

``/notifications`` lists the signed-in user's messages, newest first, unread marked
(``?unread=1`` shows only those); *查看* marks a message read and goes to its page;
*全部标为已读* marks all read. Forms post with a CSRF token.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, Flask, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape
from werkzeug.wrappers import Response

from bidding.core.auth import current_actor, require_login
from bidding.core.roles import Actor, Role
from bidding.notifications import services

bp = Blueprint("notifications", __name__, template_folder="templates")


def _actor() -> Actor:
    actor = current_actor()
    assert actor is not None  # guaranteed by require_login
    return actor


def _unread() -> int:
    """The signed-in user's unread count, counted once per request."""
    if "notifications_unread" not in g:
        actor = current_actor()
        g.notifications_unread = services.unread_count(actor) if actor is not None else 0
    return int(g.notifications_unread)


def _forget_unread() -> None:
    g.pop("notifications_unread", None)


class InboxLabel:
    """The navbar label 消息中心 with a badge of the unread count.

    The navbar prints labels with autoescaping; Jinja asks an object for ``__html__``
    first, so the badge is added here without a badge hook in ``bidding.core.pages``.
    """

    def __str__(self) -> str:
        n = _unread()
        return f"{_('消息中心')} ({n})" if n else _("消息中心")

    def __html__(self) -> str:
        n = _unread()
        label = escape(_("消息中心"))
        if not n:
            return str(label)
        hint = escape(_("%(n)s 条未读", n=n))
        shown = "99+" if n > 99 else str(n)
        return str(
            Markup(
                '{} <span class="badge rounded-pill bg-warning text-dark sb-unread" '
                'title="{}" aria-label="{}">{}</span>'
            ).format(label, hint, hint, shown)
        )


def init_app(app: Flask) -> None:
    from bidding.core.pages import add_home_card, add_nav_item

    app.register_blueprint(bp)
    # ``g`` outlives a request where the app context is kept (tests): count afresh.
    app.before_request(_forget_unread)
    add_nav_item("notifications", InboxLabel(), "notifications.inbox", order=80)
    add_home_card(
        "notifications",
        {Role.BIDDER_REP, Role.TENDERER_REP, Role.AGENCY_STAFF},
        _l("消息中心"),
        _l("澄清/修改、异议暂停与恢复、终止、开标与流标等通知。"),
        "notifications.inbox",
        order=5,
    )


@bp.get("/notifications")
@require_login
def inbox() -> Any:
    actor = _actor()
    only_unread = request.args.get("unread") == "1"
    page = services.notifications_page(
        actor,
        cursor=request.args.get("cursor"),
        limit=20,
        unread=True if only_unread else None,
    )
    rows = [(n, services.render(n)) for n in page.items]
    return render_template(
        "notifications/inbox.html",
        page=page,
        rows=rows,
        only_unread=only_unread,
        unread=_unread(),
    )


@bp.post("/notifications/<uuid:notification_id>/read")
@require_login
def read(notification_id: uuid.UUID) -> Response:
    """Mark read, then go to the message's page (``go=1``) or back to the inbox."""
    row = services.mark_read(_actor(), notification_id)
    if request.form.get("go") == "1":
        link = services.render(row).link
        if link:
            return redirect(link)
    return redirect(url_for("notifications.inbox"))


@bp.post("/notifications/read-all")
@require_login
def read_all() -> Response:
    services.mark_all_read(_actor())
    return redirect(url_for("notifications.inbox"))

"""Pages of the opening: the opening hall ``/opening/<section_id>`` and the short-lived
links to decrypted bids ``/opening/documents/<token>``."""

from __future__ import annotations

import tempfile
import uuid
from typing import Any

from flask import Blueprint, Flask, render_template, send_file
from flask_babel import gettext as _

from bidding.core import db
from bidding.core.auth import current_actor
from bidding.core.errors import NotFound
from bidding.opening import services
from bidding.projects.models import Section
from bidding.projects.services import can_view_section

bp = Blueprint(
    "opening",
    __name__,
    url_prefix="/opening",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)


def init_app(app: Flask) -> None:
    from flask_babel import lazy_gettext

    from bidding.core.pages import add_home_card
    from bidding.core.roles import Role

    app.register_blueprint(bp)
    add_home_card(
        "openings",
        {Role.CENTER_ADMIN, Role.CENTER_STAFF, Role.SUPERVISOR},
        lazy_gettext("开标管理"),
        lazy_gettext("从标段状态一览进入各标段的开标大厅：见证解密、唱标与开标异议。"),
        "projects.sections",
        order=30,
    )


@bp.get("/<uuid:section_id>")
def hall(section_id: uuid.UUID) -> Any:
    """The opening hall: the published record for everyone; live status for the parties."""
    section = db.get_session().get(Section, section_id)
    actor = current_actor()
    if section is None or not can_view_section(actor, section):
        raise NotFound(_("请求的资源不存在或您无权查看。"))
    state = services.hall_state(actor, section)
    record = None
    session = services.get_session_of(section)
    if session is not None and session.record is not None:
        record = session.record["document"]
    labels = {
        "waiting_shares": _("等待密钥保管人解密"),
        "decrypting": _("解密中"),
        "self_open_window": _("投标人自行解密中"),
        "completed": _("开标结束，开标记录已发布"),
    }
    return render_template(
        "opening/hall.html",
        section=section,
        state=state,
        record=record,
        live=state["capacity"],
        state_labels=labels,
        started=session is not None,
    )


@bp.get("/documents/<token>")
def document(token: str) -> Any:
    """Stream a decrypted bid through a signed, expiring link (decrypted on the fly)."""
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115
    result = services.open_document(token, spool)
    spool.seek(0)
    return send_file(
        spool,
        mimetype="application/zip",
        as_attachment=True,
        download_name=f"bid-{result.bid_id}.zip",
        max_age=0,
    )

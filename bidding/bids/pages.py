"""Bidder pages: 我的投标 (my bids: status per section, receipts, withdraw)."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, Flask, Response, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from bidding.bids import services
from bidding.bids.models import Bid
from bidding.core import db
from bidding.core.auth import current_actor, require_roles
from bidding.core.errors import DomainError, NotFound
from bidding.core.pages import add_home_card, add_nav_item
from bidding.core.roles import Actor, Role
from crypto.canonical import canonical_json

bp = Blueprint("bids", __name__, template_folder="templates")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    add_nav_item("bids.mine", _l("我的投标"), "bids.my_bids", roles=[Role.BIDDER_REP], order=40)
    add_home_card(
        "bids.mine",
        Role.BIDDER_REP,
        _l("我的投标"),
        _l("查看已递交的投标文件、回执和状态，截止前可撤回。"),
        "bids.my_bids",
        order=20,
    )


def _actor() -> Actor:
    actor = current_actor()
    assert actor is not None
    return actor


def _own_bid(bid_id: uuid.UUID) -> Bid:
    bid = db.get_session().get(Bid, bid_id)
    if bid is None:
        raise NotFound(_("请求的资源不存在或您无权查看。"))
    return services.get_bid(_actor(), bid.section, bid_id)


@bp.get("/bids/mine")
@require_roles(Role.BIDDER_REP)
def my_bids() -> Any:
    """我的投标: one card per section, the current bid first, then the history."""
    bids = services.my_bids(_actor())
    sections: dict[uuid.UUID, dict[str, Any]] = {}
    for bid in bids:
        entry = sections.setdefault(
            bid.section_id, {"section": bid.section, "current": None, "history": []}
        )
        if bid.is_current and entry["current"] is None:
            entry["current"] = bid
        else:
            entry["history"].append(bid)
    return render_template("bids/my_bids.html", sections=list(sections.values()))


@bp.get("/bids/<uuid:bid_id>/receipt.json")
@require_roles(Role.BIDDER_REP)
def receipt(bid_id: uuid.UUID) -> Any:
    bid = _own_bid(bid_id)
    return Response(
        canonical_json(bid.receipt),
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="receipt-{bid.id}.json"'},
    )


@bp.post("/bids/<uuid:bid_id>/withdraw")
@require_roles(Role.BIDDER_REP)
def withdraw(bid_id: uuid.UUID) -> Any:
    bid = _own_bid(bid_id)
    try:
        services.withdraw_bid(_actor(), bid)
    except DomainError as err:
        db.get_session().rollback()
        flash(err.message, "danger")
        return redirect(url_for("bids.my_bids"))
    flash(_("投标文件已撤回。"), "success")
    return redirect(url_for("bids.my_bids"))

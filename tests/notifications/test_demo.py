"""The demo (``sunbid demo``): the demo bidder has one clarification notice, made once."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from bidding.accounts.models import User
from bidding.app import settings_of
from bidding.core import db
from bidding.core.clock import Clock
from bidding.demo import BIDDER, seed
from bidding.notifications.models import Notification, NotificationKind


def test_demo_bidder_has_a_clarification_notice(app: Flask, frozen_clock: Clock) -> None:
    for _ in range(2):  # idempotent: a second seed adds nothing
        with db.session_scope() as s:
            seed(s, settings_of(app))
    s = db.get_session()
    bidder = s.scalars(select(User).where(User.username == BIDDER)).one()
    rows = list(s.scalars(select(Notification).where(Notification.user_id == bidder.id)))
    assert [n.kind for n in rows] == [NotificationKind.CLARIFICATION_ISSUED]
    assert rows[0].params["deadline_moved"] is False and rows[0].read_at is None

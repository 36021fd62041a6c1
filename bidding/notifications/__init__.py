"""Notifications (消息通知): the in-app inbox of bidders, tenderers and agencies.

Messages are made by audit-event listeners (see :mod:`bidding.notifications.services`);
delivery is in-app only (消息中心 page, ``/api/v1/notifications``) — no live push, no
email or SMS.
"""

from __future__ import annotations

import importlib

from flask import Flask


def init_app(app: Flask) -> None:
    """Wire the notifications domain: models, the audit listeners, the API and the page."""
    importlib.import_module("bidding.notifications.models")
    importlib.import_module("bidding.notifications.services")  # registers the listeners
    for name in ("api", "pages"):
        module = importlib.import_module(f"bidding.notifications.{name}")
        module.init_app(app)

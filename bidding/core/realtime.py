"""The Socket.IO server (实时通道) shared by the opening hall and the evaluation room.

One process: in-memory. Several gunicorn nodes (and Celery workers that emit): a Redis
message queue (``SUNBID_SOCKETIO_QUEUE``) so every node delivers every room's events.
Threading mode with simple-websocket by default (see the README for gevent).
"""

from __future__ import annotations

from flask import Flask
from flask_socketio import SocketIO

socketio = SocketIO()


def init_app(app: Flask) -> None:
    from bidding.app import settings_of

    settings = settings_of(app)
    socketio.init_app(
        app,
        message_queue=settings.socketio_queue or None,
        async_mode=settings.extra.get("socketio_async_mode", "threading"),
        manage_session=False,
        logger=False,
        engineio_logger=False,
    )
    app.extensions["sunbid_socketio"] = socketio

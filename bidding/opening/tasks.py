"""Background work of the opening (开标后台任务).

* ``opening.decrypt_bid`` — one task per bid, ``acks_late`` and idempotent: a redelivered
  or duplicated task finds the result no longer pending and does nothing. Emits to the
  hall go through the Socket.IO message queue (``SUNBID_SOCKETIO_QUEUE``) from the worker.
* sweeps: ``opening.start_due_openings`` (closed sections → opening) and
  ``opening.advance_due_sessions`` (quorum window → self-open window → completion).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from flask import Flask

from bidding.core.tasks import celery, register_sweep
from bidding.opening import services


@celery.task(name="opening.decrypt_bid", acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]
def decrypt_bid(result_id: str) -> str | None:
    """Decrypt one bid; returns its status (or None when it cannot be opened yet)."""
    result = services.decrypt_result(uuid.UUID(result_id))
    return None if result is None else str(result.status)


@register_sweep("opening.start_due_openings")
def start_due_openings(at: datetime) -> int:
    return services.start_due_openings(at)


@register_sweep("opening.advance_due_sessions")
def advance_due_sessions(at: datetime) -> int:
    return services.advance_due_sessions(at)


def init_app(app: Flask) -> None:
    """Importing this module registers the task and the sweep handlers."""

"""Background work of the opening (开标后台任务).

* ``opening.decrypt_bid`` — one task per bid, ``acks_late`` and idempotent: a redelivered
  or duplicated task finds the result no longer pending and does nothing. Emits to the
  hall go through the Socket.IO message queue (``SUNBID_SOCKETIO_QUEUE``) from the worker.
* sweeps: ``opening.start_due_openings`` (closed sections → opening) and
  ``opening.advance_due_sessions`` (quorum window → self-open window → completion).
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import datetime
from typing import Any

from celery.signals import worker_init
from flask import Flask

from bidding.core.tasks import celery, register_sweep
from bidding.opening import services


@celery.task(name="opening.decrypt_bid", acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]
def decrypt_bid(result_id: str) -> str | None:
    """Decrypt one bid; returns its status (or None when it cannot be opened yet)."""
    result = services.decrypt_result(uuid.UUID(result_id))
    return None if result is None else str(result.status)


@worker_init.connect  # type: ignore[untyped-decorator]
def prepare_worker(**_: Any) -> None:
    """In the worker's main process, before the pool forks: configure the ORM mappers,
    load the database driver (the engine itself is made again in each pool process) and
    import what the decryption imports lazily, so that no pool process pays for it — about
    half a second — on its first bid of an opening."""
    import zipfile  # noqa: F401

    from cryptography.hazmat.backends.openssl import backend  # noqa: F401
    from sqlalchemy.orm import configure_mappers

    import bidding.bids.package
    import bidding.core.realtime  # noqa: F401
    from bidding.core import db

    configure_mappers()
    with contextlib.suppress(RuntimeError):  # no database configured: nothing to load
        db.get_engine()  # imports the DBAPI module; connects nothing


@register_sweep("opening.start_due_openings")
def start_due_openings(at: datetime) -> int:
    return services.start_due_openings(at)


@register_sweep("opening.advance_due_sessions")
def advance_due_sessions(at: datetime) -> int:
    return services.advance_due_sessions(at)


def init_app(app: Flask) -> None:
    """Importing this module registers the task and the sweep handlers."""

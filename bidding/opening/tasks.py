"""Background work of the opening (开标后台任务).

* ``opening.decrypt_bids`` — a chunk of bids (the quorum queues all bids in chunks of
  ≤ 16, :func:`~bidding.opening.services.decrypt_chunks`), decrypted one after another and
  written in one transaction (one read, one write, one audit insert for the chunk): a
  failing bid neither blocks nor rolls back the others (it is left pending), and the
  results reach the hall at the chunk's commit. The audit log is sequenced once per chunk
  (:func:`~bidding.core.audit.deferred_sequencing`) and the completion checked once per
  chunk, after its commit.
* ``opening.decrypt_bid`` — one bid (a key handed over for self-opening).

Both are ``acks_late`` and idempotent: a redelivered or duplicated task finds the results
no longer pending and skips them. Emits to the hall go through the Socket.IO message
queue (``SUNBID_SOCKETIO_QUEUE``) from the worker.
* sweeps: ``opening.start_due_openings`` (closed sections → opening) and
  ``opening.advance_due_sessions`` (quorum window → self-open window → completion).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from datetime import datetime
from typing import Any

from celery.signals import worker_init
from flask import Flask

from bidding.core import audit, db
from bidding.core.tasks import AppContextTask, celery, register_sweep
from bidding.opening import services

log = logging.getLogger(__name__)


@celery.task(name="opening.decrypt_bid", acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]
def decrypt_bid(result_id: str) -> str | None:
    """Decrypt one bid; returns its status (or None when it cannot be opened yet)."""
    result = services.decrypt_result(uuid.UUID(result_id))
    return None if result is None else str(result.status)


@celery.task(  # type: ignore[untyped-decorator]
    name="opening.decrypt_bids", base=AppContextTask, acks_late=True, reject_on_worker_lost=True
)
def decrypt_bids(result_ids: list[str]) -> dict[str, str | None]:
    """Decrypt a chunk of bids; returns {result id: status or None}.

    The chunk's results are read, decrypted one after another and written in one
    transaction (:func:`~bidding.opening.services.decrypt_results`); a bid that fails to
    write is written alone and, if it still fails, left pending, as is a bid whose
    decryption raised (not a classified failure, which is recorded as the bid's result):
    the others commit, and the task then fails with the first such error, as a one-bid
    task would have."""
    ids = [uuid.UUID(r) for r in result_ids]
    with audit.deferred_sequencing():
        with db.session_scope():
            chunk = services.decrypt_results(ids)
        with db.session_scope():
            services.complete_finished_openings(ids)
    if chunk.error is not None:
        raise chunk.error
    return {
        str(rid): None if status is None else str(status) for rid, status in chunk.statuses.items()
    }


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

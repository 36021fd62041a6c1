"""Background work (后台任务): the Celery app, its base task, enqueue-after-commit, and the
locked periodic sweep (时钟巡检) that advances every time-driven transition.

* Embedded runtime (no ``SUNBID_BROKER_URL``): tasks run eagerly, after the transaction
  that queued them has committed; an in-process clock thread calls the sweep.
* Production: Celery workers and beat on Redis; beat schedules the sweep every
  ``SUNBID_SWEEP_INTERVAL`` seconds. The sweep takes a PostgreSQL advisory lock, so two
  beats or a manual run never sweep at the same time, and every handler is idempotent, so
  a missed or repeated tick is harmless (nothing depends on a task's ETA being kept).

Domains register their due-transitions with :func:`register_sweep`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from celery import Celery, Task
from celery.signals import worker_process_init
from flask import Flask, current_app, has_app_context
from sqlalchemy import text

from bidding.core import db
from bidding.core.clock import now

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

#: A sweep handler advances whatever is due at ``now`` and returns how many objects moved.
SweepHandler = Callable[[datetime], int]

_SWEEPS: dict[str, SweepHandler] = {}
_local_sweep_lock = threading.Lock()
#: Advisory-lock key of the sweep on PostgreSQL ("SUNBID" as a number).
SWEEP_LOCK_KEY = 0x53554E424944


class AppContextTask(Task):  # type: ignore[misc]
    """A task that runs inside the Flask app context (and always closes its session)."""

    acks_late = True
    reject_on_worker_lost = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        flask_app = _flask_app(self.app)
        with flask_app.app_context():
            try:
                return super().__call__(*args, **kwargs)
            finally:
                db.session.remove()


class SunbidTask(AppContextTask):
    """Base task: an app context and one session scope per run; ids in, idempotent.

    ``acks_late`` so a worker lost mid-task leads to redelivery, which is why every task
    must be idempotent.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        flask_app = _flask_app(self.app)
        with flask_app.app_context(), db.session_scope():
            return Task.__call__(self, *args, **kwargs)


celery = Celery("sunbid", task_cls=SunbidTask, set_as_current=False)
celery.conf.update(
    task_serializer="json",
    accept_content=["json"],
    result_serializer="json",
    task_ignore_result=True,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    timezone="UTC",
    enable_utc=True,
)


def _flask_app(app: Celery) -> Flask:
    if has_app_context():
        return current_app._get_current_object()  # type: ignore[attr-defined,no-any-return]
    flask_app: Flask | None = app.conf.get("flask_app")
    if flask_app is None:
        # A worker process: build the app from the SUNBID_* environment.
        from bidding.app import create_app

        flask_app = create_app()
    return flask_app


def init_app(app: Flask) -> None:
    """Configure the Celery app from the platform settings."""
    from bidding.app import settings_of

    settings = settings_of(app)
    eager = settings.eager_tasks
    broker_url = settings.broker_url or "memory://"
    if celery.conf.get("broker_url") != broker_url:
        # Re-pointed (tests build several apps in one process): drop the pooled
        # connections and producers made for the previous broker.
        _reset_broker_pools()
    celery.conf.update(
        flask_app=app,
        broker_url=broker_url,
        task_always_eager=eager,
        task_eager_propagates=True,
        beat_schedule={
            "sweep": {"task": "sunbid.sweep", "schedule": float(settings.sweep_interval)},
        },
    )
    app.extensions["celery"] = celery


def _reset_broker_pools() -> None:
    # Drop our references only: kombu keeps a process-wide producer pool per broker URL,
    # so closing the old pool here would break a later app pointed at the same URL.
    celery._pool = None
    if "amqp" in celery.__dict__:
        celery.amqp._producer_pool = None


@worker_process_init.connect  # type: ignore[untyped-decorator]
def _after_fork(**_: Any) -> None:
    # Never share pooled connections across a fork.
    db.dispose_engine()
    # Connect now, while the worker is idle, rather than in its first task (an opening's
    # first bids): the connection and the dialect's first-connect queries.
    try:
        with db.get_engine().connect():
            pass
    except Exception:  # the database may come up later: the first task connects then
        log.warning("worker start: the database could not be reached yet", exc_info=True)
    # Keep the freed bid buffers for the next bid (see bidding.core.memory).
    app = celery.conf.get("flask_app")
    if app is not None:
        from bidding.app import settings_of
        from bidding.core.memory import retain_freed_memory

        retain_freed_memory(settings_of(app).worker_malloc_retain_mb)


def enqueue(task: Any, *args: Any, **kwargs: Any) -> None:
    """Queue ``task`` once the current transaction commits (dropped if it rolls back).

    Tasks take ids, never objects: the worker reloads what it needs.
    """
    db.call_after_commit(lambda: task.apply_async(args=args, kwargs=kwargs))


def register_sweep(name: str) -> Callable[[SweepHandler], SweepHandler]:
    """Register a due-transition handler run by every sweep, in registration order."""

    def decorator(fn: SweepHandler) -> SweepHandler:
        _SWEEPS[name] = fn
        return fn

    return decorator


def registered_sweeps() -> dict[str, SweepHandler]:
    return dict(_SWEEPS)


@contextmanager
def _sweep_lock() -> Iterator[bool]:
    """Hold the sweep lock for the whole sweep: PostgreSQL advisory lock or a local lock."""
    engine = db.get_engine()
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            got = bool(
                conn.execute(
                    text("SELECT pg_try_advisory_lock(:k)"), {"k": SWEEP_LOCK_KEY}
                ).scalar()
            )
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": SWEEP_LOCK_KEY})
                    conn.commit()
        return
    got = _local_sweep_lock.acquire(blocking=False)
    try:
        yield got
    finally:
        if got:
            _local_sweep_lock.release()


def run_sweep(at: datetime | None = None) -> dict[str, int] | None:
    """Run every registered handler once, each in its own transaction.

    Returns ``{handler: moved}``, or ``None`` when another sweep holds the lock. A handler
    that fails is logged and the others still run; its work is retried next tick.
    """
    at = at or now()
    with _sweep_lock() as got:
        if not got:
            log.info("sweep skipped: another sweep holds the lock")
            return None
        results: dict[str, int] = {}
        for name, handler in list(_SWEEPS.items()):
            try:
                with db.session_scope():
                    results[name] = handler(at)
            except Exception:
                log.exception("sweep handler %s failed", name)
                results[name] = -1
        return results


@celery.task(name="sunbid.sweep", base=AppContextTask)  # type: ignore[untyped-decorator]
def sweep_task() -> dict[str, int] | None:
    """The beat-scheduled sweep; each handler runs in its own transaction."""
    return run_sweep()


class EmbeddedClock:
    """The in-process clock thread of the embedded runtime: sweeps every ``interval`` s."""

    def __init__(self, app: Flask, interval: float) -> None:
        self.app = app
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sunbid-clock", daemon=True)

    def start(self) -> EmbeddedClock:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                with self.app.app_context():
                    run_sweep()
            except Exception:
                log.exception("embedded sweep failed")
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

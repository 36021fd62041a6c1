"""Database engine, sessions and the declarative base (数据库).

One transaction per HTTP request, socket event, task and CLI command: the caller that owns
the unit of work uses :func:`session_scope` (or the request wrapper in ``bidding.app``);
services only ``flush``. The engine is created lazily per process (never inherited across
a fork: Celery's ``worker_process_init`` calls :func:`dispose_engine`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    DateTime,
    Engine,
    MetaData,
    Numeric,
    TypeDecorator,
    Uuid,
    create_engine,
    event,
    select,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    SessionTransaction,
    mapped_column,
    scoped_session,
)
from sqlalchemy.orm import sessionmaker as _sessionmaker

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Money(TypeDecorator[Decimal]):
    """Yuan amounts as NUMERIC(18,2) (金额, 元); SQLite keeps the exact decimal text."""

    impl = Numeric(18, 2, asdecimal=True)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError("money must be Decimal")
        quantised = value.quantize(Decimal("0.01"))
        if quantised != value:
            raise ValueError(f"money has more than 2 decimals: {value}; round it explicitly")
        return str(quantised) if dialect.name == "sqlite" else quantised

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(str(value)).quantize(Decimal("0.01"))


class Base(DeclarativeBase):
    """Declarative base with a constraint naming convention (stable migrations)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012
        datetime: UTCDateTime(),
        Decimal: Money(),
        dict[str, Any]: JSON(),
        uuid.UUID: Uuid(),
    }


class IdMixin:
    """A random UUID primary key: ids never invite enumeration."""

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)


_engine: Engine | None = None
_url: str | None = None
SessionFactory = _sessionmaker(expire_on_commit=False)
session: scoped_session[Session] = scoped_session(SessionFactory)


def configure(url: str, **engine_kwargs: Any) -> None:
    """Point the session factory at ``url``; the engine itself is made on first use."""
    global _url
    if _url != url:
        dispose_engine()
        _url = url
    engine_kwargs_store.clear()
    engine_kwargs_store.update(engine_kwargs)


engine_kwargs_store: dict[str, Any] = {}


def get_engine() -> Engine:
    """The process's engine, created lazily from the configured URL."""
    global _engine
    if _engine is None:
        if _url is None:
            raise RuntimeError("bidding.core.db.configure() was not called")
        _engine = _make_engine(_url, **engine_kwargs_store)
        SessionFactory.configure(bind=_engine)
    return _engine


def dispose_engine() -> None:
    """Drop pooled connections (after fork, or when reconfiguring)."""
    global _engine
    session.remove()
    if _engine is not None:
        _engine.dispose()
        _engine = None


def _make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # pysqlite's own transaction handling commits SAVEPOINTs outside an explicit
            # BEGIN; take it over so begin_nested() really nests (SQLAlchemy docs,
            # "Serializable isolation / Savepoints / Transactional DDL").
            dbapi_connection.isolation_level = None
            cur = dbapi_connection.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(url, **kwargs)


M = TypeVar("M", bound=Base)


def lock_row(model: type[M], row_id: Any) -> M:
    """Re-read one row with ``SELECT … FOR UPDATE`` (contended transitions lock first).

    ``populate_existing`` refreshes an instance already in the session, so the caller sees
    what the lock holder committed. On SQLite (no row locks) the database write lock taken
    by the transaction serialises writers instead.
    """
    key = sa_inspect(model).primary_key[0]
    stmt = (
        select(model)
        .where(key == row_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return get_session().scalars(stmt).one()


def commit_now() -> None:
    """Commit the request's transaction before its view returns: its row locks are
    released before the answer is serialised (for views whose transaction holds contended
    locks; build the answer's values first, as committing expires the session's objects).
    The after-request commit then has nothing left to do; a failure here raises, and the
    request answers with an error, as it would at the after-request commit."""
    get_session().commit()


def get_session() -> Session:
    """The current scoped session (bound lazily to the engine)."""
    get_engine()
    return session()


def call_after_commit(callback: Callable[[], None], s: Session | None = None) -> None:
    """Run ``callback`` once the current transaction has committed and the session is closed.

    Used to queue Celery tasks and Socket.IO emits only after the data they refer to is
    visible to other processes. A rollback discards the callback; registered inside a
    savepoint (``begin_nested``), it goes with the savepoint if that rolls back, and
    waits for the outermost commit if it is released.
    """
    target = s if s is not None else get_session()
    owner = target.get_nested_transaction() or target.get_transaction()
    target.info.setdefault("pending_callbacks", []).append((owner, callback))


def has_after_commit(callback: Callable[[], None], s: Session) -> bool:
    """Whether ``callback`` is queued to run after ``s``'s transaction commits."""
    return any(cb is callback for _, cb in s.info.get("pending_callbacks", ()))


def cancel_after_commit(callback: Callable[[], None], s: Session) -> None:
    """Unqueue ``callback`` from ``s``'s transaction (every registration of it)."""
    pending = s.info.get("pending_callbacks")
    if pending:
        pending[:] = [(owner, cb) for owner, cb in pending if cb is not callback]


@event.listens_for(Session, "after_commit")
def _promote_callbacks(s: Session) -> None:
    nested = s.get_nested_transaction()
    if nested is not None:  # a savepoint released: its callbacks now ride on its parent
        pending = s.info.get("pending_callbacks", [])
        pending[:] = [(nested.parent if o is nested else o, cb) for o, cb in pending]
        return
    pending = s.info.pop("pending_callbacks", [])
    s.info.setdefault("ready_callbacks", []).extend(cb for _, cb in pending)


@event.listens_for(Session, "after_soft_rollback")
def _drop_callbacks(s: Session, previous: SessionTransaction) -> None:
    if previous.parent is None:  # the transaction itself: nothing it queued will run
        s.info.pop("pending_callbacks", None)
    elif previous.nested:  # a savepoint: what was queued inside it goes with it
        pending = s.info.get("pending_callbacks", [])
        pending[:] = [(o, cb) for o, cb in pending if o is not previous]


def end_scope() -> None:
    """Close the scoped session, then run the callbacks its committed work queued."""
    ready: list[Callable[[], None]] = []
    if session.registry.has():
        ready = session().info.pop("ready_callbacks", [])
    session.remove()
    for callback in ready:
        callback()


@contextmanager
def session_scope() -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error, always close.

    Callbacks registered with :func:`call_after_commit` run after the session is closed.
    """
    get_engine()
    s = session()
    try:
        yield s
        s.commit()
    except BaseException:
        s.rollback()
        session.remove()
        raise
    end_scope()

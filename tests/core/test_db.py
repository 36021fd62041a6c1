from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bidding.core import db


class _TestBase(DeclarativeBase):
    """Kept apart from the platform's metadata (so no drift in migration tests)."""

    type_annotation_map = db.Base.type_annotation_map


class _Widget(db.IdMixin, _TestBase):
    """A throw-away table for these tests only."""

    __tablename__ = "test_widgets"
    name: Mapped[str] = mapped_column(String(50))
    price: Mapped[Decimal]


@pytest.fixture
def sqlite_db(tmp_path: Path):
    db.configure(f"sqlite:///{tmp_path / 'db.sqlite'}")
    _Widget.__table__.create(db.get_engine())
    yield
    db.dispose_engine()


def test_session_scope_commits_and_runs_callbacks_after_close(sqlite_db: None) -> None:
    seen: list[str] = []
    with db.session_scope() as s:
        s.add(_Widget(name="a", price=Decimal("1.50")))
        db.call_after_commit(lambda: seen.append("after"))
        assert seen == []
    assert seen == ["after"]
    with db.session_scope() as s:
        widget = s.scalars(select(_Widget)).one()
        assert widget.price == Decimal("1.50") and isinstance(widget.price, Decimal)


def test_session_scope_rolls_back_and_drops_callbacks(sqlite_db: None) -> None:
    seen: list[str] = []
    with pytest.raises(RuntimeError), db.session_scope() as s:
        s.add(_Widget(name="b", price=Decimal("2")))
        db.call_after_commit(lambda: seen.append("after"))
        raise RuntimeError("boom")
    assert seen == []
    with db.session_scope() as s:
        assert s.scalars(select(_Widget)).all() == []


def test_savepoints_neither_release_nor_drop_the_outer_callbacks(sqlite_db: None) -> None:
    """A savepoint's release is not the commit; its rollback drops only what it queued."""
    seen: list[str] = []
    with pytest.raises(RuntimeError), db.session_scope() as s:
        db.call_after_commit(lambda: seen.append("outer"))
        with s.begin_nested():
            s.add(_Widget(name="c", price=Decimal("3")))
        raise RuntimeError("the outer transaction fails after the savepoint")
    assert seen == []  # nothing ran for a transaction that rolled back

    with db.session_scope() as s:
        db.call_after_commit(lambda: seen.append("before"))
        with pytest.raises(ValueError), s.begin_nested():
            db.call_after_commit(lambda: seen.append("inside the failed savepoint"))
            raise ValueError
        with s.begin_nested():  # a released savepoint's callback waits for the commit
            db.call_after_commit(lambda: seen.append("inside a released savepoint"))
            with s.begin_nested():
                db.call_after_commit(lambda: seen.append("two levels down"))
        assert seen == []
    assert seen == ["before", "inside a released savepoint", "two levels down"]

    seen.clear()
    with db.session_scope() as s:
        with pytest.raises(ValueError), s.begin_nested():
            with s.begin_nested():  # released into a savepoint that then rolls back
                db.call_after_commit(lambda: seen.append("lost with its parent"))
            raise ValueError
        db.call_after_commit(lambda: seen.append("after"))
    assert seen == ["after"]


def test_money_refuses_float_and_silent_rounding(sqlite_db: None) -> None:
    with pytest.raises(Exception, match="Decimal"), db.session_scope() as s:
        s.add(_Widget(name="c", price=1.5))  # type: ignore[arg-type]
        s.flush()
    with pytest.raises(Exception, match="2 decimals"), db.session_scope() as s:
        s.add(_Widget(name="d", price=Decimal("1.005")))
        s.flush()


def test_naive_datetime_refused() -> None:
    from datetime import datetime

    column_type = db.UTCDateTime()
    from sqlalchemy.dialects import sqlite

    with pytest.raises(ValueError, match="naive"):
        column_type.process_bind_param(datetime(2026, 1, 1), sqlite.dialect())


def test_sqlite_savepoint_rolls_back_inside_the_outer_transaction(sqlite_db: None) -> None:
    with pytest.raises(RuntimeError), db.session_scope() as s:
        nested = s.begin_nested()
        s.add(_Widget(name="inner", price=Decimal("3")))
        s.flush()
        nested.commit()  # RELEASE SAVEPOINT must not commit the outer transaction
        raise RuntimeError("outer fails")
    with db.session_scope() as s:
        assert s.scalars(select(_Widget)).all() == []

"""The schema is only ever changed by Alembic: one head, and no drift from the models."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from bidding.cli import alembic_config, upgrade_database
from bidding.core.db import Base
from bidding.models import import_all_models

pytestmark = pytest.mark.integration


def test_one_head() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1


def _drift(url: str) -> list[object]:
    import_all_models()
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(ctx, Base.metadata))
    finally:
        engine.dispose()


def test_upgrade_head_on_empty_postgresql_matches_models(postgres_url: str) -> None:
    upgrade_database(postgres_url)
    assert _drift(postgres_url) == []


def test_upgrade_head_on_empty_sqlite_matches_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade_database(url)
    assert _drift(url) == []

"""bid upload method 'single' (one presigned PUT)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 17:05:00

The method column is a non-native Enum stored as VARCHAR with a named CHECK
(``ck_bid_uploads_bid_upload_method``); Alembic does not autogenerate CHECK changes, so
the constraint is replaced by hand (batch mode, so SQLite rebuilds the table).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0003'
down_revision: str | Sequence[str] | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = 'ck_bid_uploads_bid_upload_method'


def _replace(values: Sequence[str]) -> None:
    allowed = ", ".join(f"'{v}'" for v in values)
    with op.batch_alter_table('bid_uploads', schema=None) as batch_op:
        batch_op.drop_constraint(op.f(_NAME), type_='check')
        batch_op.create_check_constraint(op.f(_NAME), f"method IN ({allowed})")


def upgrade() -> None:
    _replace(('stream', 'multipart', 'single'))


def downgrade() -> None:
    # Refused (CHECK violation) while 'single' uploads exist: end or delete them first.
    _replace(('stream', 'multipart'))

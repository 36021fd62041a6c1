"""notifications (in-app inbox, 消息中心)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 18:00:00

One row per recipient user; ``kind`` is a non-native Enum (VARCHAR + named CHECK
``ck_notifications_notification_kind``), so adding a kind later means replacing that
CHECK by hand, as 0003 does for ``bid_uploads.method``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bidding.core.db

revision: str = '0004'
down_revision: str | Sequence[str] | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = (
    'clarification_issued',
    'procedure_paused',
    'procedure_resumed',
    'section_cancelled',
    'bids_closed',
    'opening_started',
    'section_failed',
    'opening_record_published',
)


def upgrade() -> None:
    op.create_table(
        'notifications',
        sa.Column('user_id', sa.Uuid(), nullable=False),
        sa.Column(
            'kind',
            sa.Enum(
                *KINDS,
                name='notification_kind',
                native_enum=False,
                create_constraint=True,
                length=40,
            ),
            nullable=False,
        ),
        sa.Column('section_id', sa.Uuid(), nullable=True),
        sa.Column('event_id', sa.Uuid(), nullable=False),
        sa.Column('params', sa.JSON(), nullable=False),
        sa.Column('created_at', bidding.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('read_at', bidding.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ['event_id'], ['audit_events.id'], name=op.f('fk_notifications_event_id_audit_events')
        ),
        sa.ForeignKeyConstraint(
            ['section_id'], ['sections.id'], name=op.f('fk_notifications_section_id_sections')
        ),
        sa.ForeignKeyConstraint(
            ['user_id'],
            ['users.id'],
            name=op.f('fk_notifications_user_id_users'),
            ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications')),
        sa.UniqueConstraint(
            'event_id', 'user_id', name=op.f('uq_notifications_event_id_user_id')
        ),
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f('ix_notifications_section_id'), ['section_id'], unique=False
        )
        batch_op.create_index(
            'ix_notifications_user_created', ['user_id', 'created_at', 'id'], unique=False
        )
        batch_op.create_index('ix_notifications_user_read', ['user_id', 'read_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_notifications_user_read')
        batch_op.drop_index('ix_notifications_user_created')
        batch_op.drop_index(batch_op.f('ix_notifications_section_id'))
    op.drop_table('notifications')

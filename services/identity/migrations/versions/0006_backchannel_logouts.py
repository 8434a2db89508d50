"""back-channel logout deliveries

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 01:10:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'backchannel_logouts',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('client_id', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.String(length=36), nullable=False),
        sa.Column('sid', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('abandoned_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_error', sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_backchannel_logouts_pending', 'backchannel_logouts',
                    ['next_attempt_at'], unique=False,
                    postgresql_where=sa.text('delivered_at IS NULL AND abandoned_at IS NULL'))


def downgrade() -> None:
    op.drop_index('ix_backchannel_logouts_pending', table_name='backchannel_logouts')
    op.drop_table('backchannel_logouts')

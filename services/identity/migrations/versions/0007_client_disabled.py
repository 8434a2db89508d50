"""a client can be disabled (its tokens revoked, no new ones) without being deleted

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 16:10:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('oauth_clients',
                  sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column('oauth_clients', 'disabled_at')

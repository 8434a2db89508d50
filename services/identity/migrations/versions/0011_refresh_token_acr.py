"""refresh tokens keep the level of their family's sign-in (acr), for its access tokens

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 22:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL for the tokens already issued: their access tokens carry no acr (the lowest
    # standing), which a refresh never raises.
    with op.batch_alter_table('refresh_tokens') as batch_op:
        batch_op.add_column(sa.Column('acr', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('refresh_tokens') as batch_op:
        batch_op.drop_column('acr')

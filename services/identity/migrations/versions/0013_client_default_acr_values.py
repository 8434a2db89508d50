"""a client's default_acr_values (OIDC Dynamic Client Registration 1.0 §2): the acr levels
an authorization request of the client asks when it names none

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 22:00:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('oauth_clients',
                  sa.Column('default_acr_values', sa.JSON(), nullable=False,
                            server_default=sa.text("'[]'")))


def downgrade() -> None:
    op.drop_column('oauth_clients', 'default_acr_values')

"""a user's wrong second-factor codes in a row, which the temporary lockout and a
password reset do not restart (SECOND_FACTOR_MAX_FAILURES)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 23:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('user_security') as batch_op:
        batch_op.add_column(sa.Column('failed_second_factors', sa.Integer(), nullable=False,
                                      server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('user_security') as batch_op:
        batch_op.drop_column('failed_second_factors')

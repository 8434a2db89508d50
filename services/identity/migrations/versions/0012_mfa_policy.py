"""company MFA policy (optional, required, phishing_resistant, with a grace period) and
the per-user snooze of the after-sign-in "add a passkey" page

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 22:10:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('companies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mfa_policy', sa.String(length=20),
                                      server_default='optional', nullable=False))
        batch_op.add_column(sa.Column('mfa_policy_set_at', sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('mfa_grace_days', sa.Integer(), server_default='0',
                                      nullable=False))
    op.create_table('mfa_prompt_snoozes',
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('snoozed_until', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_mfa_prompt_snoozes_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_mfa_prompt_snoozes'))
    )


def downgrade() -> None:
    op.drop_table('mfa_prompt_snoozes')
    with op.batch_alter_table('companies', schema=None) as batch_op:
        batch_op.drop_column('mfa_grace_days')
        batch_op.drop_column('mfa_policy_set_at')
        batch_op.drop_column('mfa_policy')

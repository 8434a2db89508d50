"""membership requests; users.membership (existing users are members)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 16:20:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Everyone in the read model today joined before memberships were approved: a member.
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('membership', sa.String(length=20), nullable=False,
                                      server_default='member'))

    op.create_table('membership_requests',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('tracking_number', sa.String(length=20), nullable=False),
    sa.Column('company_id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('accounts', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('decided_by', sa.String(length=64), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_membership_requests_company_id_companies')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_membership_requests_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_membership_requests')),
    sa.UniqueConstraint('tracking_number', name=op.f('uq_membership_requests_tracking_number')),
    sa.UniqueConstraint('user_id', name=op.f('uq_membership_requests_user_id'))
    )
    with op.batch_alter_table('membership_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_membership_requests_company_id'), ['company_id'], unique=False)
        batch_op.create_index('ix_membership_requests_status_expires', ['status', 'expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('membership_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_membership_requests_status_expires')
        batch_op.drop_index(batch_op.f('ix_membership_requests_company_id'))

    op.drop_table('membership_requests')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('membership')

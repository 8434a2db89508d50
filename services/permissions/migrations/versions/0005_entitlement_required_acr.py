"""entitlements.required_acr: a sensitive entitlement asks for a stronger sign-in

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 22:10:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

# A frozen copy of services/permissions/catalog.py's REQUIRED_LEVELS at this revision.
REQUIRED_LEVELS = {
    'cards.cancel': 'urn:portico:acr:mfa',
    'entitlements.approve': 'urn:portico:acr:mfa',
}


def upgrade() -> None:
    with op.batch_alter_table('entitlements', schema=None) as batch_op:
        batch_op.add_column(sa.Column('required_acr', sa.String(length=64), nullable=True))
    entitlements = sa.table('entitlements', sa.column('key', sa.String),
                            sa.column('required_acr', sa.String))
    for key, level in REQUIRED_LEVELS.items():
        op.execute(entitlements.update().where(entitlements.c.key == key)
                   .values(required_acr=level))
    # Snapshots cached before this revision know no levels; they age out within
    # PERMISSIONS_CACHE_MAX_AGE (services/permissions/cache.py).


def downgrade() -> None:
    with op.batch_alter_table('entitlements', schema=None) as batch_op:
        batch_op.drop_column('required_acr')

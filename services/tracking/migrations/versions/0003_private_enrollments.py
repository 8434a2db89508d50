"""enrollment transactions are no company's: clear their company_id

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 16:10:00.000000

Until now tracking filed an enrollment under the company whose tax id the enrollee
typed, so the company's administrators saw strangers' (even unverified) enrollments in
its overview. Ingest no longer does (ingest.PRIVATE_TYPES); this clears the rows
already filed. Transactions an internal app registered keep what the app said.
"""
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE transactions SET company_id = NULL "
               "WHERE type IN ('enrollment', 'membership') AND source <> 'app' "
               "AND company_id IS NOT NULL")


def downgrade() -> None:
    pass  # which company an enrollment named is not worth restoring: it was the leak

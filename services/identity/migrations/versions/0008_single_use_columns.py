"""password resets and email changes take the single-use secret's column names (digest,
issued_at, used_at), as access codes have

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 10:00:00
"""
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

# table -> {old column: new column}
RENAMED = {
    'password_resets': {'token_digest': 'digest', 'created_at': 'issued_at'},
    'contact_changes': {'token_digest': 'digest', 'created_at': 'issued_at',
                        'confirmed_at': 'used_at'},
}


def _rename(table: str, columns: dict[str, str], unique_before: str, unique_after: str) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.drop_constraint(op.f(f'uq_{table}_{unique_before}'), type_='unique')
        for old, new in columns.items():
            batch_op.alter_column(old, new_column_name=new)
    # A second batch: on SQLite, a constraint added in the batch that renames its column
    # is left out of the rebuilt table.
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.create_unique_constraint(op.f(f'uq_{table}_{unique_after}'), [unique_after])


def upgrade() -> None:
    for table, columns in RENAMED.items():
        _rename(table, columns, 'token_digest', 'digest')


def downgrade() -> None:
    for table, columns in RENAMED.items():
        _rename(table, {new: old for old, new in columns.items()}, 'digest', 'token_digest')

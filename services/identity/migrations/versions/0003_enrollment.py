"""enrollment: companies, enrollments, accounts, access codes, security answers, audit log

On PostgreSQL the audit log is also append-only in the database (a trigger), not
only in the ORM.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op


revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('action', sa.String(length=80), nullable=False),
    sa.Column('actor_type', sa.String(length=20), nullable=False),
    sa.Column('actor_id', sa.String(length=64), nullable=True),
    sa.Column('subject_type', sa.String(length=20), nullable=False),
    sa.Column('subject_id', sa.String(length=64), nullable=True),
    sa.Column('tracking_number', sa.String(length=20), nullable=True),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.Column('request_id', sa.String(length=128), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_occurred_at'), ['occurred_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_subject_id'), ['subject_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_tracking_number'), ['tracking_number'], unique=False)
    op.create_table('companies',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('tax_id_key', sa.String(length=40), nullable=False),
    sa.Column('requires_review', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_companies')),
    sa.UniqueConstraint('country', 'tax_id_key', name='uq_companies_country_tax')
    )
    op.create_table('enrollments',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('tracking_number', sa.String(length=20), nullable=False),
    sa.Column('status', sa.Enum('submitted', 'email_verified', 'in_review', 'code_issued', 'activated', 'locked', 'expired', name='enrollment_status', native_enum=False, length=20), nullable=False),
    sa.Column('given_name', sa.String(length=120), nullable=False),
    sa.Column('family_name', sa.String(length=120), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('email_key', sa.String(length=320), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=False),
    sa.Column('job_title', sa.String(length=120), nullable=False),
    sa.Column('preferred_language', sa.String(length=5), nullable=False),
    sa.Column('company_id', sa.String(length=36), nullable=False),
    sa.Column('company_name', sa.String(length=200), nullable=False),
    sa.Column('address_line1', sa.String(length=200), nullable=False),
    sa.Column('address_line2', sa.String(length=200), nullable=True),
    sa.Column('city', sa.String(length=120), nullable=False),
    sa.Column('region', sa.String(length=120), nullable=True),
    sa.Column('postal_code', sa.String(length=20), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('tax_id', sa.String(length=40), nullable=False),
    sa.Column('pin_hash', sa.String(length=255), nullable=False),
    sa.Column('word_hash', sa.String(length=255), nullable=False),
    sa.Column('verification_digest', sa.String(length=64), nullable=True),
    sa.Column('verification_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('activation_ticket_digest', sa.String(length=64), nullable=True),
    sa.Column('activation_ticket_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('failed_attempts', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('verified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('activated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('locked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_enrollments_company_id_companies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_enrollments')),
    sa.UniqueConstraint('activation_ticket_digest', name=op.f('uq_enrollments_activation_ticket_digest')),
    sa.UniqueConstraint('tracking_number', name=op.f('uq_enrollments_tracking_number')),
    sa.UniqueConstraint('verification_digest', name=op.f('uq_enrollments_verification_digest'))
    )
    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_enrollments_company_id'), ['company_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_enrollments_email_key'), ['email_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_enrollments_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_enrollments_user_id'), ['user_id'], unique=False)
    op.create_table('security_answers',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('question', sa.String(length=40), nullable=False),
    sa.Column('answer_hash', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_security_answers_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_security_answers')),
    sa.UniqueConstraint('user_id', 'question', name='uq_security_answers_question')
    )
    with op.batch_alter_table('security_answers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_security_answers_user_id'), ['user_id'], unique=False)
    op.create_table('access_codes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('enrollment_id', sa.String(length=36), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('voided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('issued_by', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['enrollment_id'], ['enrollments.id'], name=op.f('fk_access_codes_enrollment_id_enrollments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_access_codes')),
    sa.UniqueConstraint('digest', name=op.f('uq_access_codes_digest'))
    )
    with op.batch_alter_table('access_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_access_codes_enrollment_id'), ['enrollment_id'], unique=False)
    op.create_table('enrollment_accounts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('enrollment_id', sa.String(length=36), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('last5', sa.String(length=5), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['enrollment_id'], ['enrollments.id'], name=op.f('fk_enrollment_accounts_enrollment_id_enrollments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_enrollment_accounts')),
    sa.UniqueConstraint('enrollment_id', 'fingerprint', name='uq_enrollment_accounts_fingerprint')
    )
    with op.batch_alter_table('enrollment_accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_enrollment_accounts_enrollment_id'), ['enrollment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_enrollment_accounts_fingerprint'), ['fingerprint'], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION 'audit_log is append-only'; END; $$ LANGUAGE plpgsql;
            CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
            FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
        """)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log;"
                   " DROP FUNCTION IF EXISTS audit_log_append_only();")
    with op.batch_alter_table('enrollment_accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_enrollment_accounts_fingerprint'))
        batch_op.drop_index(batch_op.f('ix_enrollment_accounts_enrollment_id'))
    op.drop_table('enrollment_accounts')
    with op.batch_alter_table('access_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_access_codes_enrollment_id'))
    op.drop_table('access_codes')
    with op.batch_alter_table('security_answers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_security_answers_user_id'))
    op.drop_table('security_answers')
    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_enrollments_user_id'))
        batch_op.drop_index(batch_op.f('ix_enrollments_status'))
        batch_op.drop_index(batch_op.f('ix_enrollments_email_key'))
        batch_op.drop_index(batch_op.f('ix_enrollments_company_id'))
    op.drop_table('enrollments')
    op.drop_table('companies')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_tracking_number'))
        batch_op.drop_index(batch_op.f('ix_audit_log_subject_id'))
        batch_op.drop_index(batch_op.f('ix_audit_log_occurred_at'))
        batch_op.drop_index(batch_op.f('ix_audit_log_action'))
    op.drop_table('audit_log')

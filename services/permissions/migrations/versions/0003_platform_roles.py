"""platform roles apart from the company catalog; company-wide tracking entitlement

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 16:30:00

* ``platform_roles``: platform powers held by people, never company entitlements.
* Every live grant of the company entitlement ``helpdesk.act`` becomes the platform role
  ``helpdesk_supervisor`` (what ``helpdesk.act`` allowed: everything the help desk does);
  ``helpdesk.act`` leaves the catalog, the roles, the home page and every company's
  program, and open access requests that asked for it are cancelled.
* ``transactions.track_company`` ("see the company's transactions") joins the catalog and
  the program administrator role; every holder of that role gets it. ``transactions.track``
  now means "follow your own requests" only.
* ``users.company_id`` may be NULL: platform staff belong to no company.

What it found and changed is logged (``portico.migrations``) with counts.
"""
import logging
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

log = logging.getLogger("portico.migrations")

HELPDESK = 'helpdesk.act'
MOVED_TO = 'helpdesk_supervisor'
COMPANY_WIDE = 'transactions.track_company'
ADMIN_ROLE = 'program_administrator'

grants = sa.table('grants', sa.column('id', sa.String), sa.column('user_id', sa.String),
                  sa.column('company_id', sa.String), sa.column('entitlement_key', sa.String),
                  sa.column('accounts', sa.JSON), sa.column('source', sa.String),
                  sa.column('expires_at', sa.DateTime(timezone=True)),
                  sa.column('created_at', sa.DateTime(timezone=True)),
                  sa.column('revoked_at', sa.DateTime(timezone=True)))
platform_roles = sa.table('platform_roles', sa.column('user_id', sa.String),
                          sa.column('role', sa.String), sa.column('granted_by', sa.String),
                          sa.column('why', sa.Text),
                          sa.column('granted_at', sa.DateTime(timezone=True)))
audit_log = sa.table('audit_log', sa.column('occurred_at', sa.DateTime(timezone=True)),
                     sa.column('actor_id', sa.String), sa.column('action', sa.String),
                     sa.column('target_type', sa.String), sa.column('target_id', sa.String),
                     sa.column('company_id', sa.String), sa.column('why', sa.Text),
                     sa.column('details', sa.JSON))
companies = sa.table('companies', sa.column('id', sa.String),
                     sa.column('allowed_entitlements', sa.JSON))
requests = sa.table('access_requests', sa.column('id', sa.String),
                    sa.column('entitlements', sa.JSON), sa.column('status', sa.String),
                    sa.column('decided_by', sa.String), sa.column('comment', sa.Text),
                    sa.column('decided_at', sa.DateTime(timezone=True)))
entitlements = sa.table('entitlements', sa.column('key', sa.String),
                        sa.column('description_en', sa.String),
                        sa.column('description_es', sa.String), sa.column('category', sa.String),
                        sa.column('account_scopable', sa.Boolean))
role_entitlements = sa.table('role_entitlements', sa.column('role_key', sa.String),
                             sa.column('entitlement_key', sa.String))
home_sections = sa.table('home_sections', sa.column('key', sa.String),
                         sa.column('entitlement_key', sa.String), sa.column('title_en', sa.String),
                         sa.column('title_es', sa.String), sa.column('url_path', sa.String),
                         sa.column('position', sa.Integer))


def _aware(moment):
    return None if moment is None else (moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def upgrade() -> None:
    op.create_table('platform_roles',
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=40), nullable=False),
    sa.Column('granted_by', sa.String(length=64), nullable=False),
    sa.Column('why', sa.Text(), nullable=False),
    sa.Column('granted_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('user_id', 'role', name=op.f('pk_platform_roles'))
    )
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.alter_column('company_id', existing_type=sa.String(length=64), nullable=True)

    bind = op.get_bind()
    now = datetime.now(UTC)
    _move_helpdesk_grants(bind, now)
    _remove_helpdesk_from_catalog(bind, now)
    _add_company_wide_tracking(bind, now)


def _move_helpdesk_grants(bind, now) -> None:
    rows = bind.execute(sa.select(grants.c.user_id, grants.c.company_id, grants.c.expires_at)
                        .where(grants.c.entitlement_key == HELPDESK,
                               grants.c.revoked_at.is_(None))).all()
    holders = sorted({r.user_id for r in rows
                      if r.expires_at is None or _aware(r.expires_at) > now})
    for user_id in holders:
        bind.execute(platform_roles.insert().values(
            user_id=user_id, role=MOVED_TO, granted_by='migration',
            why=f'moved from the company entitlement {HELPDESK} (migration 0003)',
            granted_at=now))
        bind.execute(audit_log.insert().values(
            occurred_at=now, actor_id='migration', action='platform_role.granted',
            target_type='user', target_id=user_id, company_id=None,
            why=f'{HELPDESK} is a platform power, no longer a company entitlement',
            details={'role': MOVED_TO}))
    removed = bind.execute(grants.delete().where(grants.c.entitlement_key == HELPDESK)).rowcount
    log.warning("migration 0003: %d live %s grant(s) moved to the platform role %s "
                "(%d grant row(s), live or revoked, removed)", len(holders), HELPDESK,
                MOVED_TO, removed)


def _remove_helpdesk_from_catalog(bind, now) -> None:
    cancelled = 0
    for req in bind.execute(sa.select(requests.c.id, requests.c.entitlements)
                            .where(requests.c.status.in_(['pending', 'cosigned']))).all():
        if HELPDESK in (req.entitlements or []):
            bind.execute(requests.update().where(requests.c.id == req.id).values(
                status='cancelled', decided_by='migration', decided_at=now,
                comment=f'{HELPDESK} can no longer be requested: it is a platform power'))
            cancelled += 1
    narrowed = 0
    for company in bind.execute(sa.select(companies.c.id, companies.c.allowed_entitlements)
                                ).all():
        allowed = company.allowed_entitlements
        if allowed is not None and HELPDESK in allowed:
            bind.execute(companies.update().where(companies.c.id == company.id).values(
                allowed_entitlements=[k for k in allowed if k != HELPDESK]))
            narrowed += 1
    bind.execute(home_sections.delete().where(home_sections.c.entitlement_key == HELPDESK))
    bind.execute(role_entitlements.delete()
                 .where(role_entitlements.c.entitlement_key == HELPDESK))
    bind.execute(entitlements.delete().where(entitlements.c.key == HELPDESK))
    log.warning("migration 0003: %s left the catalog; %d open access request(s) for it "
                "cancelled, %d company program(s) no longer list it", HELPDESK, cancelled,
                narrowed)


def _add_company_wide_tracking(bind, now) -> None:
    bind.execute(entitlements.update().where(entitlements.c.key == 'transactions.track')
                 .values(description_en='Track your own requests and transactions',
                         description_es='Seguir sus propias solicitudes y transacciones'))
    bind.execute(entitlements.insert().values(
        key=COMPANY_WIDE, description_en="See the company's requests and transactions",
        description_es='Ver las solicitudes y transacciones de la empresa',
        category='tracking', account_scopable=False))
    bind.execute(role_entitlements.insert().values(role_key=ADMIN_ROLE,
                                                   entitlement_key=COMPANY_WIDE))
    admins = bind.execute(sa.select(grants.c.user_id, grants.c.company_id).distinct()
                          .where(grants.c.source == f'role:{ADMIN_ROLE}',
                                 grants.c.revoked_at.is_(None))).all()
    for admin in admins:
        grant_id = str(uuid.uuid4())
        bind.execute(grants.insert().values(
            id=grant_id, user_id=admin.user_id, company_id=admin.company_id,
            entitlement_key=COMPANY_WIDE, accounts=None, source=f'role:{ADMIN_ROLE}',
            expires_at=None, created_at=now, revoked_at=None))
        bind.execute(audit_log.insert().values(
            occurred_at=now, actor_id='migration', action='grant.created', target_type='grant',
            target_id=grant_id, company_id=admin.company_id,
            why='company-wide tracking is its own entitlement, held by administrators',
            details={'user_id': admin.user_id, 'entitlement': COMPANY_WIDE,
                     'source': f'role:{ADMIN_ROLE}', 'accounts': None}))
    log.warning("migration 0003: %s granted to %d program administrator(s)", COMPANY_WIDE,
                len(admins))


def downgrade() -> None:
    bind = op.get_bind()
    now = datetime.now(UTC)
    bind.execute(grants.delete().where(grants.c.entitlement_key == COMPANY_WIDE))
    bind.execute(role_entitlements.delete()
                 .where(role_entitlements.c.entitlement_key == COMPANY_WIDE))
    bind.execute(entitlements.delete().where(entitlements.c.key == COMPANY_WIDE))
    bind.execute(entitlements.insert().values(
        key=HELPDESK, description_en='Act as the help desk',
        description_es='Actuar como mesa de ayuda', category='helpdesk', account_scopable=False))
    bind.execute(home_sections.insert().values(
        key='helpdesk', entitlement_key=HELPDESK, title_en='Help desk', title_es='Mesa de ayuda',
        url_path='/helpdesk', position=120))
    users = sa.table('users', sa.column('id', sa.String), sa.column('company_id', sa.String))
    for row in bind.execute(sa.select(platform_roles.c.user_id, users.c.company_id)
                            .join(users, users.c.id == platform_roles.c.user_id)
                            .where(platform_roles.c.role.in_(
                                ['helpdesk_agent', 'helpdesk_supervisor']),
                                users.c.company_id.is_not(None)).distinct()).all():
        bind.execute(grants.insert().values(
            id=str(uuid.uuid4()), user_id=row.user_id, company_id=row.company_id,
            entitlement_key=HELPDESK, accounts=None, source='operator', expires_at=None,
            created_at=now, revoked_at=None))
    op.drop_table('platform_roles')
    bind.execute(users.delete().where(users.c.company_id.is_(None)))  # platform staff
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.alter_column('company_id', existing_type=sa.String(length=64), nullable=False)

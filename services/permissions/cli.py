"""``iamctl requests expire`` and ``iamctl permissions ...`` (operator commands)."""

from __future__ import annotations

import click

from services.common.db import Database, service_database
from services.common.domain_errors import DomainError
from services.common.events import utcnow

from .settings import PermissionsSettings


def _open() -> tuple[PermissionsSettings, Database]:
    """The settings and the database, whose sessions carry the cache invalidator (as the
    worker's do): a change made here reaches every replica's cache."""
    from services.common.app import make_redis
    from services.common.cli import service_settings

    from .handlers import session_info

    settings = service_settings("permissions")
    return settings, service_database(
        settings, **session_info(settings, make_redis(settings.redis_url)))


@click.group("requests")
def requests_group() -> None:
    """Access requests."""


@requests_group.command("expire")
def expire() -> None:
    """Expire access and membership requests past REQUEST_TTL_DAYS; remind those about to
    expire (run it from cron, e.g. hourly)."""
    from .access_requests import expire_pending_requests
    from .memberships import expire_pending_memberships

    settings, db = _open()
    with db.transaction() as session:
        expired, reminded = expire_pending_requests(session, utcnow(),
                                                    settings.request_reminder_days)
        memberships = expire_pending_memberships(session, utcnow())
    db.dispose()
    click.echo(f"expired {expired}, reminded {reminded}, memberships expired {memberships}")


@click.group("permissions")
def permissions_group() -> None:
    """Entitlements and grants."""


@permissions_group.command("grant")
@click.argument("user_id")
@click.argument("entitlement")
@click.option("--why", required=True, help="recorded in the audit log")
def grant(user_id: str, entitlement: str, why: str) -> None:
    """Grant the company entitlement ENTITLEMENT to USER_ID without a request (an operator's
    repair). Audited with the actor ``operator``. Platform powers are `iamctl platform`."""
    from .grants import grant_entitlement
    from .models import Entitlement, User

    _, db = _open()
    with db.transaction() as session:
        user = session.get(User, user_id)
        if user is None:
            raise click.ClickException("no such user in the permissions read model")
        if session.get(Entitlement, entitlement) is None:
            raise click.ClickException("no such entitlement")
        granted = grant_entitlement(session, user=user, key=entitlement, actor_id="operator",
                                    source="operator", now=utcnow(), why=why)
        grant_id = granted.id
    db.dispose()
    click.echo(f"granted {entitlement} to {user_id} (grant {grant_id})")


@click.group("platform")
def platform_group() -> None:
    """Platform roles: helpdesk_agent, helpdesk_supervisor, platform_admin, auditor."""


@platform_group.command("grant")
@click.argument("user_id")
@click.argument("role")
@click.option("--why", required=True, help="recorded in the audit log")
def platform_grant(user_id: str, role: str, why: str) -> None:
    """Give USER_ID the platform role ROLE as the operator: the bootstrap of the first
    platform administrator and help desk. Audited with the actor ``operator``."""
    from .platform import operator_grants_platform_role

    _, db = _open()
    try:
        with db.transaction() as session:
            operator_grants_platform_role(session, user_id=user_id, role=role, why=why,
                                          now=utcnow())
    except DomainError as exc:
        raise click.ClickException(_refusal(exc)) from None
    finally:
        db.dispose()
    click.echo(f"{user_id} holds the platform role {role}")


@platform_group.command("revoke")
@click.argument("user_id")
@click.argument("role")
@click.option("--why", required=True, help="recorded in the audit log")
def platform_revoke(user_id: str, role: str, why: str) -> None:
    """Take the platform role ROLE from USER_ID as the operator (audited)."""
    from .platform import revoke_platform_role

    _, db = _open()
    try:
        with db.transaction() as session:
            revoke_platform_role(session, user_id=user_id, role=role, actor=None, why=why,
                                 now=utcnow())
    except DomainError as exc:
        raise click.ClickException(_refusal(exc)) from None
    finally:
        db.dispose()
    click.echo(f"{user_id} no longer holds the platform role {role}")


def _refusal(exc) -> str:
    errors = getattr(exc, "errors", None)
    return f"{exc.detail} {errors}" if errors else exc.detail


commands = [requests_group, permissions_group, platform_group]

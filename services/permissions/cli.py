"""``iamctl requests expire`` and ``iamctl permissions ...`` (operator commands)."""

from __future__ import annotations

import click

from services.common.db import Database
from services.common.events import utcnow

from .cache import INVALIDATOR, Invalidator


def _database_and_invalidator():
    from services.common.app import make_redis
    from services.common.cli import service_settings

    settings = service_settings("permissions")
    return (settings, Database(settings.database_url),
            Invalidator(make_redis(settings.redis_url), settings.redis_namespace))


@click.group("requests")
def requests_group() -> None:
    """Access requests."""


@requests_group.command("expire")
def expire() -> None:
    """Expire access and membership requests past REQUEST_TTL_DAYS; remind those about to
    expire (run it from cron, e.g. hourly)."""
    from .access_requests import expire_pending_requests
    from .memberships import expire_pending_memberships

    settings, db, invalidator = _database_and_invalidator()
    with db.transaction() as session:
        session.info[INVALIDATOR] = invalidator
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
    """Grant ENTITLEMENT to USER_ID without a request: the bootstrap of the first help-desk
    user (``helpdesk.act``). Audited with the actor ``operator``."""
    from .grants import grant_entitlement
    from .models import Entitlement, User

    _, db, invalidator = _database_and_invalidator()
    with db.transaction() as session:
        session.info[INVALIDATOR] = invalidator
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


commands = [requests_group, permissions_group]

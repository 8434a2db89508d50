"""``iamctl`` commands of the account lifecycle (append ``commands`` to identity's CLI)."""

from __future__ import annotations

import json
import sys

import click
from sqlalchemy import inspect

from services.common.config import load_or_exit
from services.common.db import Database, service_database
from services.identity.settings import IdentitySettings
from services.identity.tables import identity_metadata

from . import inactivity
from .config import config_from


def _open() -> tuple[IdentitySettings, Database]:
    settings = load_or_exit(IdentitySettings)
    db = service_database(settings)
    missing = set(identity_metadata().tables) - set(inspect(db.engine).get_table_names())
    if missing:
        click.echo("error: the identity database is not migrated; run `iamctl migrate identity`",
                   err=True)
        sys.exit(1)
    return settings, db


@click.command("sweep-inactive")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10000))
def sweep_inactive(batch_size: int) -> None:
    """Deactivate users past their inactivity period and warn those close to it (run it
    daily). Prints the counts as JSON."""
    settings, db = _open()
    with db.transaction() as session:
        report = inactivity.sweep(session, config_from(settings), batch_size=batch_size)
    click.echo(json.dumps({"deactivated": len(report.deactivated),
                           "warned": len(report.warned)}))


@click.command("company-inactivity")
@click.argument("company_id")
@click.argument("days", type=click.IntRange(1, 3650), required=False)
def company_inactivity(company_id: str, days: int | None) -> None:
    """Set (or, without DAYS, clear) a company's shorter inactivity period."""
    settings, db = _open()
    with db.transaction() as session:
        inactivity.set_company_period(session, company_id, days)
    click.echo(json.dumps({"company_id": company_id, "inactivity_days": days
                           or settings.inactivity_days}))


commands = [sweep_inactive, company_inactivity]

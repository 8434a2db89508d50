"""Kernel commands: migrations and the configuration reference."""

from __future__ import annotations

import importlib

import click

from .config import describe, load_or_exit
from .db import upgrade
from .streams import SERVICES


def service_settings(service: str):
    """The loaded settings of ``service`` (same variables as the running service)."""
    module = importlib.import_module(f"services.{service}.settings")
    cls = getattr(module, f"{service.capitalize()}Settings")
    return load_or_exit(cls)


@click.command("migrate")
@click.argument("services", nargs=-1, type=click.Choice(SERVICES))
def migrate(services: tuple[str, ...]) -> None:
    """Apply the Alembic migrations of SERVICES (default: all four)."""
    for service in services or SERVICES:
        settings = service_settings(service)
        upgrade(service, settings.database_url)
        click.echo(f"{service}: migrated")


@click.command("config")
@click.argument("service", type=click.Choice(SERVICES))
def config(service: str) -> None:
    """Print SERVICE's configuration variables as a Markdown table."""
    module = importlib.import_module(f"services.{service}.settings")
    cls = getattr(module, f"{service.capitalize()}Settings")
    click.echo("| variable | default | what it does |\n|---|---|---|")
    for env, default, help_text in describe(cls):
        click.echo(f"| `{env}` | `{default}` | {help_text} |")


@click.command("worker")
@click.argument("service", type=click.Choice(SERVICES))
def worker(service: str) -> None:
    """Run SERVICE's outbox relay and event consumer until SIGTERM/SIGINT."""
    from .worker import run_worker

    raise SystemExit(run_worker(service))


commands = [migrate, config, worker]

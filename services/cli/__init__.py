"""``iamctl``: the operator's command line.

Each package may contribute commands in its own ``cli.py`` module exposing
``commands`` (a list of click commands); they are found here by name so that no
service imports another.
"""

from __future__ import annotations

import importlib

import click

from services.common.config import MetricsSettings, load_or_exit
from services.common.metrics import ensure_multiprocess_dir

CONTRIBUTORS = ("common", "identity", "permissions", "tracking", "notifier", "devtools")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Portico's command line. Reads the same environment variables as the services."""
    # Before any command's first metric.
    ensure_multiprocess_dir(load_or_exit(MetricsSettings).metrics_dir)


def _register() -> None:
    for package in CONTRIBUTORS:
        try:
            module = importlib.import_module(f"services.{package}.cli")
        except ModuleNotFoundError as exc:
            if exc.name != f"services.{package}.cli":
                raise
            continue
        for command in getattr(module, "commands", []):
            main.add_command(command)


_register()

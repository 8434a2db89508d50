"""What identity adds to its generic worker (services/common/worker.py): the sender of
back-channel logout tokens (services/identity/oidc/backchannel.py)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from services.common.db import Database, service_database

from .oidc.backchannel import BackchannelSender
from .oidc.keys import Keyring
from .settings import IdentitySettings


def runnables(settings: IdentitySettings, db: Database | None = None,
              redis: Any = None, *, metrics: CollectorRegistry | None = None) -> list[Any]:
    database = db or service_database(settings)
    return [BackchannelSender(database, Keyring(database, settings.key_encryption_key),
                              settings.issuer, metrics=metrics)]

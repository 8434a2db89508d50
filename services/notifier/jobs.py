"""What the notifier adds to its generic worker (services/common/worker.py).

The common worker runs the consumer group of every service (and the outbox relay of
those that publish: not the notifier) and calls ``services.<service>.jobs.runnables``;
the notifier adds its SMTP sender.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from services.common.db import Database, service_database

from .delivery import InFlight, Sender
from .settings import NotifierSettings

# Sender threads per worker. Each claims its own round (SKIP LOCKED) and holds its own
# SMTP connection, so the SMTP round trips of one overlap the others' and the database's.


def runnables(settings: NotifierSettings, db: Database | None = None,
              redis: Any = None, *, metrics: CollectorRegistry | None = None) -> list[Any]:
    """The notifier's SMTP senders (Runnables: ``run(stop_event)``), ``NOTIFY_SENDERS`` of them."""
    database = db or service_database(settings)
    in_flight = InFlight()  # so that one sender's recovery never takes a sibling's message
    return [Sender(database, settings, in_flight=in_flight, metrics=metrics)
            for _ in range(settings.senders)]

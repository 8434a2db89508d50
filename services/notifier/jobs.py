"""What the notifier adds to its generic worker (services/common/worker.py).

The common worker runs the consumer group of every service (and the outbox relay of
those that publish: not the notifier) and calls ``services.<service>.jobs.runnables``;
the notifier adds its SMTP sender.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from services.common.db import Database

from . import handlers
from .delivery import InFlight, Sender
from .settings import NotifierSettings

# Sender threads per worker. Each claims its own round (SKIP LOCKED) and holds its own
# SMTP connection, so the SMTP round trips of one overlap the others' and the database's.


def runnables(settings: NotifierSettings, db: Database | None = None,
              redis: Any = None, *, metrics: CollectorRegistry | None = None) -> list[Any]:
    """The notifier's SMTP senders (Runnables: ``run(stop_event)``), ``NOTIFY_SENDERS`` of them.

    Also hands ``settings`` to the event handlers, so they use the same keys and
    help-desk details as the worker that runs them.
    """
    handlers.configure(settings)
    database = db or Database(settings.database_url)
    in_flight = InFlight()  # so that one sender's recovery never takes a sibling's message
    return [Sender(database, settings, in_flight=in_flight, metrics=metrics)
            for _ in range(settings.senders)]

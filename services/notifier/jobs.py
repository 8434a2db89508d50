"""What the notifier adds to its generic worker (services/common/worker.py).

The common worker runs the outbox relay and the consumer group of every service and
calls ``services.<service>.jobs.runnables``; the notifier adds its SMTP sender.
"""

from __future__ import annotations

from typing import Any

from services.common.db import Database

from . import handlers
from .delivery import Sender
from .settings import NotifierSettings


def runnables(settings: NotifierSettings, db: Database | None = None,
              redis: Any = None) -> list[Any]:
    """The notifier's SMTP sender (a Runnable: ``run(stop_event)``).

    Also hands ``settings`` to the event handlers, so they use the same keys and
    help-desk details as the worker that runs them.
    """
    handlers.configure(settings)
    return [Sender(db or Database(settings.database_url), settings)]

"""Tracking's consumer: one handler per event type of docs/events.md's mapping table.

The generic worker (services/common/worker.py) runs them in the ``tracking``
consumer group, inside the transaction that records the event as processed.
"""

from __future__ import annotations

from services.common.events import HandlerRegistry

from .ingest import RULES, ingest_events

registry = HandlerRegistry()

# One call per consumer batch with all its mapped events (ingest_events is bulk-minded).
registry.on_batch(*RULES)(ingest_events)

"""Test-only tables and a consumer process for the event-bus tests.

Run as a real process by the crash test::

    python tests/integration/event_consumer_proc.py --db-url URL --redis-url URL \
        --namespace NS --consumer NAME [--sleep SECONDS]

It consumes ``<ns>.events.test`` in group ``test`` with a handler that inserts one
``effects`` row per event (a table with no unique constraint, so a side effect
applied twice would show) and sleeps, half inside the transaction and half after
the commit, so that a SIGKILL may land mid-transaction or between commit and ack;
``--hang-after N`` makes the N-th event stall between its commit and its ack.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from typing import Any

from sqlalchemy import Integer, String, event
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

if __name__ == "__main__":  # started as a script: make the repository importable
    sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from services.common.db import new_metadata  # noqa: E402
from services.common.events import (  # noqa: E402
    Consumer,
    Envelope,
    OutboxMixin,
    ProcessedEventMixin,
)

GROUP = "test"


class Base(DeclarativeBase):
    metadata = new_metadata()


class Outbox(OutboxMixin, Base):
    pass


class Processed(ProcessedEventMixin, Base):
    pass


class Effect(Base):
    """One row per application of a side effect: duplicates are visible on purpose."""

    __tablename__ = "effects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36))


class Account(Base):
    """A state change recorded together with its event."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(80))


def effect_handler(sleep: float = 0.0, hang_after: int = 0):
    """A handler inserting an ``Effect`` row; sleeps ``sleep`` split around the commit.

    With ``hang_after=N`` it stalls for a minute right after committing its N-th event,
    before the consumer can acknowledge it: a kill then leaves that entry pending with
    its side effect already committed.
    """
    calls = 0

    def handle(session: Session, envelope: Envelope) -> None:
        nonlocal calls
        calls += 1
        session.add(Effect(event_id=envelope.id))
        pause = 60.0 if calls == hang_after else sleep / 2
        if sleep:
            time.sleep(sleep / 2)
        if pause:

            def after_commit(_session: Any) -> None:
                time.sleep(pause)

            event.listen(session, "after_commit", after_commit, once=True)

    return handle


def main(argv: list[str] | None = None) -> int:
    from services.common.app import make_redis
    from services.common.db import Database
    from services.common.streams import events_stream

    parser = argparse.ArgumentParser()
    parser.add_argument("--db-url", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--consumer", required=True)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--hang-after", type=int, default=0)
    parser.add_argument("--claim-idle-ms", type=int, default=30_000)
    parser.add_argument("--batch-size", type=int, default=50)
    args = parser.parse_args(argv)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    db = Database(args.db_url)
    consumer = Consumer(db, make_redis(args.redis_url), GROUP,
                        [events_stream("test", args.namespace)], effect_handler(args.sleep, args.hang_after),
                        Processed, consumer_name=args.consumer, namespace=args.namespace,
                        claim_idle_ms=args.claim_idle_ms, batch_size=args.batch_size,
                        block_ms=200)
    print("ready", flush=True)
    consumer.run(stop)
    db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())

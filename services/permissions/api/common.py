"""What every view shares: the clock, the caller, the unit of work."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from flask import Flask
from sqlalchemy.orm import Session

from services.common.app import context
from services.common.auth import current_claims, token_scopes

from ..grants import Actor, resolve_actor


def now(app: Flask | None = None) -> datetime:
    """The service's clock (``ServiceContext.clock``); ``app`` where there is no app
    context (the fast check routes)."""
    return context(app).now()


def settings() -> Any:
    return context().settings


def scopes() -> set[str]:
    return token_scopes(current_claims())


def actor(session: Session) -> Actor:
    return resolve_actor(session, current_claims())


@contextlib.contextmanager
def unit_of_work() -> Iterator[Session]:
    """A transaction whose permission changes reach every replica's cache once it commits
    (the service's sessions carry the cache invalidator)."""
    with context().db.transaction() as session:
        yield session

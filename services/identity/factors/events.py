"""What every factor change publishes and records: one event through the outbox and
one audit row, in the caller's transaction. Nothing secret goes into either."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from services.identity.lifecycle.domain import Actor, person, publish, record
from services.identity.models import User

from .config import FactorsConfig


def factor_changed(session: Session, cfg: FactorsConfig, user: User, actor: Actor,
                   change: str, factor: str, **detail: Any) -> None:
    """``change`` is ``added`` or ``removed``; ``factor`` the kind (``totp``)."""
    publish(session, cfg.lifecycle, f"identity.factor.{change}", user,
            {**person(user), "factor": factor})
    record(session, cfg.lifecycle, f"factor.{change}", actor, user.id, factor=factor,
           **detail)

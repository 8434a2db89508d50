"""Single-use secrets: one shape for every secret that works once (an access code, a
password-reset link, an email-change link).

Each kind keeps its own table, declared with :class:`SingleUseMixin` (one table is one
purpose), and its own hashing: the contract is the same for all.

* **Issue** (:func:`issue`): only a digest of the secret is stored, never the secret.
  How it is hashed is the kind's choice (a keyed HMAC for the access codes people type,
  plain SHA-256 for 256-bit random link tokens): the digest must be deterministic, since
  the secret is looked up by it. A new secret voids the outstanding ones (neither used
  nor voided) of the same subject, so a subject has at most one live secret of a kind.
* **Live**: neither used nor voided, and ``expires_at`` still ahead.
* **Claim** (:func:`claim`): ``UPDATE … SET used_at=:now WHERE id=:id AND used_at IS
  NULL AND voided_at IS NULL AND expires_at > :now``, and the row count decides. On
  PostgreSQL a concurrent claim waits for the first one's row lock, re-checks the
  ``WHERE`` against the committed row and matches nothing: exactly one claim wins. The
  caller claims before it writes anything the secret allows, and refuses if it lost.
* **Void** (:func:`void`): the same conditional update setting ``voided_at`` (e.g. after
  too many wrong answers), so a secret is ended once however many requests end it.

The caller's clock gives ``now`` (the services' clocks are injectable for tests).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, TypeVar

from sqlalchemy import ColumnElement, Integer, String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.orm.attributes import set_committed_value

from .db import UTCDateTime
from .events import utcnow


class SingleUseMixin:
    """Columns of a single-use secret's table. A kind names, in ``subject_key``, the
    column saying whose secret it is (``user_id``, ``enrollment_id``)."""

    subject_key: ClassVar[str]

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    def is_live(self, now: datetime) -> bool:
        return self.used_at is None and self.voided_at is None and self.expires_at > now


Secret = TypeVar("Secret", bound=SingleUseMixin)


def _unspent(kind: type[SingleUseMixin]) -> tuple[ColumnElement[bool], ...]:
    return kind.used_at.is_(None), kind.voided_at.is_(None)


def _of_subject(kind: type[SingleUseMixin], subject_id: Any) -> ColumnElement[bool]:
    return getattr(kind, kind.subject_key) == subject_id


def issue(session: Session, secret: Secret, now: datetime) -> Secret:
    """Void the subject's outstanding secrets of this kind, then add ``secret`` (not yet
    added to the session: its digest, subject and ``expires_at`` set) issued ``now``."""
    kind = type(secret)
    session.execute(update(kind).where(
        _of_subject(kind, getattr(secret, kind.subject_key)), *_unspent(kind))
        .values(voided_at=now))
    secret.issued_at = now
    session.add(secret)
    return secret


def unspent(session: Session, kind: type[Secret], digest: str) -> Secret | None:
    """The secret with this digest if it is neither used nor voided, expired or not (a
    kind may tell an expired secret from an unknown one, e.g. once other checks pass)."""
    return session.scalar(select(kind).where(kind.digest == digest, *_unspent(kind)))


def live(session: Session, kind: type[Secret], digest: str, now: datetime) -> Secret | None:
    """The live secret with this digest, or None."""
    return session.scalar(select(kind).where(kind.digest == digest, *_unspent(kind),
                                             kind.expires_at > now))


def latest_live(session: Session, kind: type[Secret], subject_id: Any,
                now: datetime) -> Secret | None:
    """The subject's newest live secret of this kind, or None."""
    return session.scalar(select(kind).where(_of_subject(kind, subject_id), *_unspent(kind),
                                             kind.expires_at > now)
                          .order_by(kind.id.desc()).limit(1))


def _end(session: Session, secret: SingleUseMixin, column: str, now: datetime,
         *conditions: ColumnElement[bool]) -> bool:
    kind = type(secret)
    ended = session.execute(
        update(kind).where(kind.id == secret.id, *_unspent(kind), *conditions)
        .values({column: now})
        # The row count decides; the object is set only when this call won.
        .execution_options(synchronize_session=False)).rowcount  # type: ignore[attr-defined]
    if ended == 1:
        set_committed_value(secret, column, now)
    return bool(ended == 1)


def claim(session: Session, secret: SingleUseMixin, now: datetime) -> bool:
    """Use ``secret`` up if it is still live: whether this call did (False: it was used,
    voided or expired, perhaps by a concurrent request)."""
    return _end(session, secret, "used_at", now, type(secret).expires_at > now)


def void(session: Session, secret: SingleUseMixin, now: datetime) -> bool:
    """End ``secret`` unused if it is still unspent: whether this call did."""
    return _end(session, secret, "voided_at", now)

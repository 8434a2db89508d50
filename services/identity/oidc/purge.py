"""Deleting the provider's spent records: codes, refresh tokens and access-token ids that
can no longer be used, nor matter to a replay check, and settled back-channel logouts
(``iamctl tokens purge``).

Without it these tables only grow: every authorization, code exchange and refresh
adds rows, and nothing else removes them. What may go, and why nothing that protects
anyone is lost:

* an **access-token record** (``issued_access_tokens``: a ``jti`` by family, kept so that
  a replay can deny-list the family's live access tokens) once the token expired: an
  expired token is refused anyway;
* a **refresh-token family**, all its rows together, once every one of them has ended
  (expired or been revoked): while any member can still be used, the used ones stay, so
  that a stolen one presented again still revokes the family;
* an **authorization code** once it expired and nothing issued from it remains (no
  refresh token and no access-token record of its family): while something does, a
  replayed code must still be recognised and revoke it. The nonce check
  (``OpenIDCode.exists_nonce``) reads codes too, so a nonce is remembered for the
  code's lifetime plus the grace period at least;
* a **back-channel logout** once it was delivered or given up.

Each only after ``grace`` more, so that an answer never changes the moment something
expires. Rows go in batches of ``batch_size``, each batch its own transaction, so that a
large backlog never holds locks for long.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, func, select

from services.common.db import Database
from services.common.events import utcnow

from .models import AuthorizationCode, BackchannelLogout, IssuedAccessToken, RefreshToken

DEFAULT_GRACE = timedelta(hours=24)

_CODES = AuthorizationCode.__table__
_REFRESH = RefreshToken.__table__
_ISSUED = IssuedAccessToken.__table__
_LOGOUTS = BackchannelLogout.__table__


@dataclass(frozen=True)
class PurgeReport:
    """How many rows of each kind were deleted."""

    access_token_records: int
    refresh_tokens: int
    authorization_codes: int
    backchannel_logouts: int = 0


def _expired_access_records(cutoff: datetime, limit: int) -> Any:
    return select(_ISSUED.c.jti).where(_ISSUED.c.expires_at < cutoff).limit(limit)


def _ended_families(cutoff: datetime, limit: int) -> Any:
    # A member ends when it is revoked, or else when it expires.
    ended_at = func.max(func.coalesce(_REFRESH.c.revoked_at, _REFRESH.c.expires_at))
    return (select(_REFRESH.c.family_id).group_by(_REFRESH.c.family_id)
            .having(ended_at < cutoff).limit(limit))


def _spent_codes(cutoff: datetime, limit: int) -> Any:
    issued_from = _CODES.c.family_id
    return (select(_CODES.c.code_digest)
            .where(_CODES.c.expires_at < cutoff,
                   ~exists().where(_REFRESH.c.family_id == issued_from),
                   ~exists().where(_ISSUED.c.family_id == issued_from))
            .limit(limit))


def _settled_logouts(cutoff: datetime, limit: int) -> Any:
    settled_at = func.coalesce(_LOGOUTS.c.delivered_at, _LOGOUTS.c.abandoned_at)
    return select(_LOGOUTS.c.id).where(settled_at < cutoff).limit(limit)


def _purge(db: Database, column: Any, batch_of: Any, cutoff: datetime, batch_size: int) -> int:
    """Delete the rows whose ``column`` is among ``batch_of(cutoff, batch_size)``, batch by
    batch until a batch comes back short; the number of rows deleted (a batch of refresh
    families may be more rows than families)."""
    deleted = 0
    while True:
        with db.transaction() as session:
            keys = list(session.scalars(batch_of(cutoff, batch_size)))
            if keys:
                deleted += session.execute(
                    delete(column.table).where(column.in_(keys))).rowcount or 0
        if len(keys) < batch_size:
            return deleted


def purge_spent_records(db: Database, *, grace: timedelta = DEFAULT_GRACE,
                        batch_size: int = 1000, now: datetime | None = None) -> PurgeReport:
    """Delete what can no longer be used nor be replayed to any effect, ``grace`` after
    that became so (see the module's docstring). Access-token records and refresh
    families go first: a code is spent only once they are gone."""
    cutoff = (now or utcnow()) - grace
    access = _purge(db, _ISSUED.c.jti, _expired_access_records, cutoff, batch_size)
    refresh = _purge(db, _REFRESH.c.family_id, _ended_families, cutoff, batch_size)
    codes = _purge(db, _CODES.c.code_digest, _spent_codes, cutoff, batch_size)
    logouts = _purge(db, _LOGOUTS.c.id, _settled_logouts, cutoff, batch_size)
    return PurgeReport(access_token_records=access, refresh_tokens=refresh,
                       authorization_codes=codes, backchannel_logouts=logouts)

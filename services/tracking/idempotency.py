"""``Idempotency-Key`` handling for the internal apps' POSTs.

A key belongs to one client. The first request with a key runs its use case and
stores the answer in the same database transaction; a retry with the same key and
the same request gets that stored answer back; the same key with a different
request is refused. Only successful answers are stored: a refused request changed
nothing, so retrying it simply runs again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.common.db import Database

from .domain import IdempotencyKeyReused
from .models import IdempotencyKey

Outcome = tuple[int, dict[str, Any]]


def fingerprint(method: str, path: str, body: Any) -> str:
    canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _stored(session: Session, client_id: str, key: str, request_hash: str) -> Outcome | None:
    row = session.get(IdempotencyKey, (client_id, key))
    if row is None:
        return None
    if row.request_hash != request_hash:
        raise IdempotencyKeyReused(key)
    return row.status_code, json.loads(row.response_body)


def run_once(db: Database, client_id: str, key: str | None, request_hash: str,
             use_case: Callable[[Session], Outcome]) -> Outcome:
    """Run ``use_case`` in a transaction, or replay the answer stored for ``key``."""
    if key is None:
        with db.transaction() as session:
            return use_case(session)
    try:
        with db.transaction() as session:
            found = _stored(session, client_id, key, request_hash)
            if found is not None:
                return found
            status, body = use_case(session)
            session.add(IdempotencyKey(client_id=client_id, key=key, request_hash=request_hash,
                                       status_code=status,
                                       response_body=json.dumps(body, default=str)))
            session.flush()
            return status, body
    except IntegrityError:
        # A concurrent request with the same key committed first: answer as it did.
        with db.read() as session:
            found = _stored(session, client_id, key, request_hash)
        if found is None:
            raise
        return found

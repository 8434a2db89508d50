"""Ending everything a user is signed in with: refresh-token families (with their live
access tokens, on the deny-list) and server-side login sessions in Redis.

Login sessions are found by scanning ``<ns>:session:*``: sessions.py keeps no per-user
index. That is O(sessions) and acceptable for the rare password change; a per-user set
in sessions.py would make it O(user's sessions) (see docs/lifecycle.md).
"""

from __future__ import annotations

import json

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.streams import key
from services.identity.oidc.backchannel import queue_logouts
from services.identity.oidc.models import RefreshToken
from services.identity.oidc.tokens import revoke_family
from services.identity.sessions import public_sid


def revoke_refresh_tokens(session: Session, client: redis.Redis, namespace: str,
                          user_id: str) -> int:
    families = set(session.scalars(select(RefreshToken.family_id).where(
        RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))))
    return sum(revoke_family(session, client, namespace, family) for family in families)


def end_login_sessions(session: Session, client: redis.Redis, namespace: str, user_id: str,
                       keep_sid: str | None = None) -> int:
    """Delete every login session of ``user_id`` except ``keep_sid``, queueing their
    back-channel logouts in ``session``; returns the count."""
    ended = 0
    prefix = key(namespace, "session", "")
    for name in client.scan_iter(match=prefix + "*", count=500):
        sid = name.decode()[len(prefix):]
        if sid == keep_sid:
            continue
        raw = client.get(name)
        try:
            owner = json.loads(raw).get("user_id") if raw else None
        except ValueError:
            continue
        if owner == user_id:
            queue_logouts(session, client, namespace, user_id, public_sid(sid))
            client.delete(name)
            ended += 1
    return ended


def sign_out_everywhere(session: Session, client: redis.Redis, namespace: str, user_id: str,
                        keep_sid: str | None = None) -> dict[str, int]:
    return {"refresh_tokens": revoke_refresh_tokens(session, client, namespace, user_id),
            "sessions": end_login_sessions(session, client, namespace, user_id, keep_sid)}

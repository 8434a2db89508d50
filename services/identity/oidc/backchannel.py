"""OpenID Connect Back-Channel Logout 1.0: when a login session ends, every client that
registered a ``backchannel_logout_uri`` and was issued a code in that session is sent a
signed logout token, server to server.

* **Who took part.** Issuing a code to such a client adds it to a Redis set of the
  session (``<ns>:session-clients:<sid>``, the public ``sid`` claim), which lives as long
  as the session can.
* **Queued, not sent, when the session ends.** The logout view and "sign out
  everywhere" (a password change, the help desk) insert one ``backchannel_logouts`` row
  per client; the request never waits on a client's server.
* **Delivered by the identity worker** (:class:`BackchannelSender`): due rows are
  claimed with a lease (``SKIP LOCKED`` on PostgreSQL), so a sender killed mid-delivery
  leaves its rows to be tried again once the lease (under two minutes) runs out. 200 or
  204 delivers; any other answer, or none within ``TIMEOUT`` seconds, is retried with
  exponential backoff, and given up after ``MAX_ATTEMPTS`` (logged, and kept with its
  last error). A client may so receive one logout twice; each token has its own ``jti``.

Why the delivery is hand-written rather than an event through the outbox: a consumer
handles a batch in one database transaction and re-runs the others' handlers when one
fails (services/common/consumer.py), so one slow or failing client would hold up and
repeat every other's delivery, and identity's consumption of permissions' events with it.
This is the notifier's pattern for email (claim, lease, backoff), on its own table.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import timedelta

import redis
import requests
from joserfc import jwt
from prometheus_client import CollectorRegistry
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.common.db import Database
from services.common.events import utcnow
from services.common.metrics import counter
from services.common.retry import backoff_delay
from services.common.streams import as_text, key

from .keys import Keyring
from .models import BackchannelLogout, OAuthClient

log = logging.getLogger("portico.identity.backchannel")

EVENT = "http://schemas.openid.net/event/backchannel-logout"
TOKEN_TTL = 120  # seconds: the specification recommends at most two minutes
TIMEOUT = 5.0  # seconds a client's server has to answer
MAX_ATTEMPTS = 8  # over about 20 minutes with the backoff below
BACKOFF_BASE, BACKOFF_CAP = 10.0, 1800.0
BATCH = 10  # rows claimed at once
# A claim holds its rows longer than delivering all of them can take, so that no other
# sender takes one while this one may still send it.
LEASE = timedelta(seconds=BATCH * TIMEOUT + 60)


def participants_key(namespace: str, sid: str) -> str:
    return key(namespace, "session-clients", sid)


def remember_participant(client: redis.Redis, namespace: str, sid: str, client_id: str,
                         ttl: int) -> None:
    """Record that ``client_id`` was issued a code in session ``sid`` (the public sid)
    for ``ttl`` seconds: as long as a session lives."""
    name = participants_key(namespace, sid)
    pipe = client.pipeline(transaction=False)
    pipe.sadd(name, client_id)
    pipe.expire(name, ttl)
    pipe.execute()


def queue_logouts(session: Session, client: redis.Redis, namespace: str, user_id: str,
                  sid: str) -> int:
    """Queue, in ``session``'s transaction, a logout token for each client that took part
    in session ``sid`` of ``user_id`` and has a ``backchannel_logout_uri``; the number
    queued. (The set of clients expires with the session: a session ends only once.)"""
    taking_part = sorted(map(as_text, client.smembers(participants_key(namespace, sid))))
    if not taking_part:
        return 0
    listening = list(session.scalars(select(OAuthClient.client_id).where(
        OAuthClient.client_id.in_(taking_part),
        OAuthClient.backchannel_logout_uri.is_not(None))))
    session.add_all(BackchannelLogout(client_id=client_id, user_id=user_id, sid=sid,
                                      attempts=0, next_attempt_at=utcnow())
                    for client_id in listening)
    return len(listening)


def logout_token(keyring: Keyring, issuer: str, client: OAuthClient, user_id: str,
                 sid: str) -> str:
    """The logout token (specification §2.4), signed as the client's ID tokens are."""
    now = int(time.time())
    alg = client.id_token_signed_response_alg or "ES256"
    signer = keyring.signer(alg)
    header = {"alg": alg, "kid": signer.kid, "typ": "logout+jwt"}
    claims = {"iss": issuer, "aud": client.client_id, "sub": user_id, "sid": sid,
              "iat": now, "exp": now + TOKEN_TTL, "jti": uuid.uuid4().hex,
              "events": {EVENT: {}}}
    return jwt.encode(header, claims, signer)


class BackchannelSender:
    """The identity worker's loop that delivers queued logout tokens (``run(stop)``)."""

    def __init__(self, db: Database, keyring: Keyring, issuer: str, *,
                 interval: float = 1.0, http: requests.Session | None = None,
                 metrics: CollectorRegistry | None = None) -> None:
        self.db = db
        self.keyring = keyring
        self.issuer = issuer
        self.interval = interval
        self.http = http or requests.Session()
        self.settled = counter(metrics, "portico_backchannel_logouts_total",
                               "Back-channel logout deliveries settled, by outcome "
                               "(delivered, retrying, abandoned)", ["outcome"])

    def claim(self, limit: int = BATCH) -> list[BackchannelLogout]:
        """Take up to ``limit`` due rows for one lease, counting the attempt; the rows,
        detached (``attempts`` is this attempt's number)."""
        now = utcnow()
        with self.db.transaction() as session:
            due = session.scalars(
                select(BackchannelLogout)
                .where(BackchannelLogout.delivered_at.is_(None),
                       BackchannelLogout.abandoned_at.is_(None),
                       BackchannelLogout.next_attempt_at <= now)
                .order_by(BackchannelLogout.next_attempt_at).limit(limit)
                .with_for_update(skip_locked=True)).all()
            for row in due:
                row.attempts += 1
                row.next_attempt_at = now + LEASE
            return list(due)

    def deliver_due(self) -> int:
        """Claim and try what is due; the number of rows tried."""
        rows = self.claim()
        if not rows:
            return 0
        with self.db.read() as session:
            clients = {client.client_id: client for client in session.scalars(
                select(OAuthClient).where(
                    OAuthClient.client_id.in_({row.client_id for row in rows})))}
            session.expunge_all()
        for row in rows:
            self._deliver(row, clients.get(row.client_id))
        return len(rows)

    def _deliver(self, row: BackchannelLogout, client: OAuthClient | None) -> None:
        if client is None or not client.backchannel_logout_uri:
            self._settle(row, error="the client no longer has a backchannel_logout_uri",
                         final=True)
            return
        token = logout_token(self.keyring, self.issuer, client, row.user_id, row.sid)
        try:
            answer = self.http.post(client.backchannel_logout_uri,
                                    data={"logout_token": token}, timeout=TIMEOUT,
                                    allow_redirects=False,
                                    headers={"Cache-Control": "no-store"})
        except requests.RequestException as exc:
            self._settle(row, error=f"no answer: {type(exc).__name__}")
            return
        if answer.status_code in (200, 204):
            self._settle(row, error=None)
        else:
            self._settle(row, error=f"answered {answer.status_code}")

    def _settle(self, row: BackchannelLogout, *, error: str | None, final: bool = False) -> None:
        now = utcnow()
        values: dict[str, object]
        if error is None:
            outcome, values = "delivered", {"delivered_at": now, "last_error": None}
        elif final or row.attempts >= MAX_ATTEMPTS:
            outcome, values = "abandoned", {"abandoned_at": now, "last_error": error}
            log.warning("back-channel logout given up", extra={
                "client_id": row.client_id, "attempts": row.attempts, "error": error})
        else:
            delay = backoff_delay(row.attempts, BACKOFF_BASE, BACKOFF_CAP)
            outcome = "retrying"
            values = {"next_attempt_at": now + timedelta(seconds=delay), "last_error": error}
        with self.db.transaction() as session:
            session.execute(update(BackchannelLogout)
                            .where(BackchannelLogout.id == row.id).values(**values))
        self.settled.labels(outcome).inc()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                tried = self.deliver_due()
            except Exception as exc:  # the database is away: keep the worker alive
                log.warning("back-channel logout delivery failed",
                            extra={"error_type": type(exc).__name__})
                tried = 0
                stop.wait(min(30.0, self.interval * 10))
            if tried < BATCH:
                stop.wait(self.interval)


"""Helpers of the permissions tests: the ``World`` a test drives, a clock, and cutting a
cache off from Redis. The fixtures built on them are in
tests/integration/fixtures/permissions.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from services.common.acr import MULTI_FACTOR
from services.common.events import Envelope, utcnow
from services.permissions.cache import INVALIDATOR
from services.permissions.grants import Actor
from services.permissions.handlers import registry
from services.permissions.memberships import approve_membership
from services.permissions.models import MembershipRequest, OutboxEvent
from services.permissions.platform import operator_grants_platform_role

T0 = datetime(2030, 1, 15, 9, 0, tzinfo=UTC)


def cut_off_from_redis(cache) -> None:
    """Point a snapshot cache, and the watched keys it reads versions through, at a Redis
    that does not answer (a closed port)."""
    import redis

    from services.common.watched import WatchedKeys

    cache.redis = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    cache.watched = WatchedKeys(cache.redis, cache.watched.prefixes)


class Clock:
    def __init__(self, moment: datetime = T0) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> None:
        self.moment += timedelta(**delta)


class World:
    """Builds companies and users through identity's events and calls the API as them."""

    def __init__(self, app, issuer) -> None:
        self.app = app
        self.issuer = issuer
        self.client = app.test_client()
        self.clock = Clock()
        app.extensions["portico"].clock = self.clock
        self.db = app.extensions["portico"].db

    def session(self):
        tx = self.db.transaction()
        return _InvalidatingTransaction(tx, self.app.extensions["permissions.invalidator"])

    def deliver(self, event_type: str, data: dict[str, Any], envelope: Envelope | None = None):
        envelope = envelope or Envelope.new(event_type, "identity", data,
                                            subject=data.get("user_id"))
        with self.session() as session:
            registry(session, envelope)
        return envelope

    def activate(self, user_id: str, company_id: str | None, *, lang: str = "en",
                 accounts: list[tuple[str, str]] = (), admit: bool = True) -> None:
        """The user activates at identity; a later member of a company is then admitted by
        the help desk (``admit=False``: left a pending newcomer)."""
        self.deliver("identity.user.activated", self.activation_data(
            user_id, company_id, lang=lang, accounts=accounts))
        if admit:
            self.admit(user_id)

    def admit(self, user_id: str) -> None:
        """The help desk approves the user's pending membership request, if there is one."""
        with self.session() as session:
            pending = session.scalar(select(MembershipRequest.id).where(
                MembershipRequest.user_id == user_id, MembershipRequest.status == "pending"))
            if pending is not None:
                # The handler dates the request by the real clock: decide by it too.
                approve_membership(session, request_id=pending, comment="test set-up",
                                   actor=Actor("operator", helpdesk=True), now=utcnow())

    @staticmethod
    def activation_data(user_id: str, company_id: str | None, *, lang: str = "en",
                        accounts: list[tuple[str, str]] = (),
                        company_name: str | None = None) -> dict[str, Any]:
        return {
            "user_id": user_id, "enrollment_id": f"enr-{user_id}", "email": f"{user_id}@example.com",
            "given_name": user_id.title(), "family_name": "Tester", "phone": "+15550100",
            "job_title": "Manager", "preferred_language": lang, "company_id": company_id,
            "company_name": company_name or f"Company {company_id}",
            "accounts": [{"last5": l5, "fingerprint": fp} for l5, fp in accounts],
            "notifications": {"status_changes": True}}

    def make_staff(self, user_id: str, *roles: str) -> str:
        """A person of no company holding platform ``roles`` (as ``iamctl platform grant``)."""
        self.activate(user_id, None)
        with self.session() as session:
            for role in roles:
                operator_grants_platform_role(session, user_id=user_id, role=role,
                                              why="test staff", now=self.clock())
        return user_id

    def make_helpdesk(self, user_id: str = "hd-1", role: str = "helpdesk_supervisor") -> str:
        return self.make_staff(user_id, role)

    def headers(self, sub: str, scope: str = "", **claims: Any) -> dict[str, str]:
        token = self.issuer.issue(sub=sub, aud="permissions", scope=scope, **claims)
        return {"Authorization": f"Bearer {token}"}

    def service_headers(self, scope: str) -> dict[str, str]:
        return self.headers("svc-client", scope=scope, client_id="svc-client")

    def designate(self, company_id: str, user_id: str, by: str = "hd-1"):
        return self.client.put(f"/admin/v1/companies/{company_id}/principal",
                               json={"user_id": user_id, "why": "appointed by the program"},
                               headers=self.headers(by))

    def request_access(self, sub: str, entitlements: list[str], **body: Any):
        payload = {"entitlements": entitlements, "justification": "needed for my job", **body}
        return self.client.post("/v1/access-requests", json=payload, headers=self.headers(sub))

    def decide(self, request_id: str, verb: str, sub: str, comment: str | None = "ok", **claims):
        """As ``sub`` signed in with a second factor (``acr`` mfa, which approving asks for)
        unless ``claims`` say otherwise."""
        claims.setdefault("acr", MULTI_FACTOR)
        return self.client.post(f"/v1/access-requests/{request_id}/{verb}",
                                json={"comment": comment}, headers=self.headers(sub, **claims))

    def subject_token(self, subject: str, acr: str = MULTI_FACTOR, **claims: Any) -> str:
        """The subject's own access token for permissions, as a service forwards it."""
        return self.issuer.issue(sub=subject, aud="permissions", acr=acr, **claims)

    def check(self, subject: str, action: str, resource: dict | None = None,
              client=None, subject_acr: str | None = None) -> dict[str, Any]:
        """Asked by a service; with ``subject_acr``, forwarding the subject's token at it."""
        body: dict[str, Any] = {"subject": subject, "action": action}
        if resource is not None:
            body["resource"] = resource
        if subject_acr is not None:
            body["subject_token"] = self.subject_token(subject, subject_acr)
        response = (client or self.client).post(
            "/v1/check", json=body, headers=self.service_headers("permissions.check"))
        assert response.status_code == 200, response.json
        return response.json

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        with self.db.read() as session:
            rows = session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
            found = [json.loads(r.payload) for r in rows]
        return [e for e in found if event_type is None or e["type"] == event_type]


class _InvalidatingTransaction:
    def __init__(self, tx, invalidator) -> None:
        self.tx = tx
        self.invalidator = invalidator

    def __enter__(self):
        session = self.tx.__enter__()
        session.info[INVALIDATOR] = self.invalidator
        return session

    def __exit__(self, *exc):
        return self.tx.__exit__(*exc)

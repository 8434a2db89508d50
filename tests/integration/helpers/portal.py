"""Helpers of the portal tests: the addresses of the services, answering requests-mock from
a Flask app in process, and the ``Suite`` of apps a test drives. Events between services
are handed over the way the consumers would: the outbox rows of one service fed to the next
one's handlers. The ``suite`` fixture is in tests/integration/fixtures/portal.py.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode, urlsplit

import pyotp
from sqlalchemy import select

from services.common.events import Envelope, utcnow
from services.identity.oidc.tokens import mint_access_token
from services.identity.service import NewUser, create_user
from services.permissions.cache import INVALIDATOR
from services.permissions.grants import Actor
from services.permissions.handlers import registry as permissions_handlers
from services.permissions.memberships import approve_membership
from services.permissions.models import MembershipRequest
from services.permissions.models import OutboxEvent as PermissionsOutbox
from services.tracking.handlers import registry as tracking_handlers
from tests.integration.helpers.factors import set_up_totp

ISSUER = "http://127.0.0.1:8001"
PERMISSIONS = "http://127.0.0.1:8002"
TRACKING = "http://127.0.0.1:8003"
PORTAL = "http://127.0.0.1:8000"
PASSWORD = "correct horse battery staple"  # noqa: S105 (test data)
COMPANY = "co-acme"


def forward_to(app):
    """A requests-mock callback answering from ``app`` in process."""
    client = app.test_client()

    def answer(request, context):
        url = urlsplit(request.url)
        body = request.body
        if isinstance(body, str):
            body = body.encode()
        response = client.open(url.path, query_string=url.query, method=request.method,
                               headers=dict(request.headers), data=body)
        context.status_code = response.status_code
        for name, value in response.headers.items():
            if name.lower() != "content-length":
                context.headers[name] = value
        return response.data

    return answer


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


@dataclass
class Suite:
    identity: object
    permissions: object
    tracking: object
    portal: object
    portal_client_id: str
    portal_client_secret: str
    users: dict[str, str] = field(default_factory=dict)  # username → user id
    relayed: set[str] = field(default_factory=set)

    # identity ----------------------------------------------------------------------
    def add_user(self, username: str, given_name: str) -> str:
        ctx = self.identity.extensions["portico"]
        with ctx.db.transaction() as session:
            user = create_user(session, NewUser(
                username=username, password=PASSWORD, email=f"{username}@example.com",
                given_name=given_name, family_name="Tester", company_id=COMPANY))
            user_id = user.id
        self.users[username] = user_id
        self.activate_in_permissions(user_id, given_name)
        return user_id

    def operator_token(self, audience: str, scope: str) -> str:
        provider = self.identity.extensions["portico.oidc"].provider
        return mint_access_token(provider.keyring, issuer=ISSUER, sub="ops-console",
                                 client_id="ops-console", aud=audience, scope=scope,
                                 ttl=120).value

    # permissions -------------------------------------------------------------------
    def activate_in_permissions(self, user_id: str, given_name: str) -> None:
        """What the permissions consumer does with ``identity.user.activated``."""
        envelope = Envelope.new("identity.user.activated", "identity", {
            "user_id": user_id, "enrollment_id": f"enr-{user_id}",
            "email": f"{given_name.lower()}@example.com", "given_name": given_name,
            "family_name": "Tester", "phone": "+15550100", "job_title": "Manager",
            "preferred_language": "en", "company_id": COMPANY, "company_name": "Acme",
            "accounts": [{"last5": "11111", "fingerprint": "fp-acme-1"}],
            "notifications": {"status_changes": True}}, subject=user_id)
        ctx = self.permissions.extensions["portico"]
        with ctx.db.transaction() as session:
            session.info[INVALIDATOR] = self.permissions.extensions[INVALIDATOR]
            permissions_handlers(session, envelope)
        # A later employee of the company is a newcomer until admitted: the help desk admits.
        with ctx.db.transaction() as session:
            session.info[INVALIDATOR] = self.permissions.extensions[INVALIDATOR]
            pending = session.scalar(select(MembershipRequest.id).where(
                MembershipRequest.user_id == user_id, MembershipRequest.status == "pending"))
            if pending is not None:
                approve_membership(session, request_id=pending, comment="set-up",
                                   actor=Actor("operator", helpdesk=True), now=utcnow())

    def designate_principal(self, user_id: str) -> None:
        token = self.operator_token("permissions", "permissions.admin")
        response = self.permissions.test_client().put(
            f"/admin/v1/companies/{COMPANY}/principal",
            json={"user_id": user_id, "why": "named by the program"},
            headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.get_json()

    # tracking ----------------------------------------------------------------------
    def relay_to_tracking(self) -> int:
        """Hand permissions' new outbox events to tracking's handlers (the consumer's job)."""
        with self.permissions.extensions["portico"].db.read() as session:
            payloads = [row.payload for row in session.scalars(
                select(PermissionsOutbox).order_by(PermissionsOutbox.id))]
        fresh = [Envelope.from_json(p) for p in payloads
                 if json.loads(p)["id"] not in self.relayed]
        with self.tracking.extensions["portico"].db.transaction() as session:
            for envelope in fresh:
                tracking_handlers(session, envelope)
                self.relayed.add(envelope.id)
        return len(fresh)

    # the browser -------------------------------------------------------------------
    def sign_in(self, username: str, app=None, base: str = PORTAL):
        """A browser (one app cookie jar, one identity cookie jar) signing in to the
        portal (or ``app`` served at ``base``) through Portico; returns the app's test
        client, signed in."""
        portal = (app or self.portal).test_client()
        idp = self.identity.test_client()
        start = portal.get("/login")
        assert start.status_code == 302, start.get_data(as_text=True)
        location = urlsplit(start.headers["Location"])
        authorize = f"{location.path}?{location.query}"
        answer = idp.get(authorize)
        if answer.status_code == 302 and answer.headers["Location"].startswith("/login"):
            page = idp.get("/login?" + urlencode({"next": authorize}))
            done = idp.post("/login", data={
                "username": username, "password": PASSWORD, "next": authorize,
                "csrf_token": csrf_of(page.get_data(as_text=True))})
            assert done.status_code == 303, done.get_data(as_text=True)
            answer = idp.get(done.headers["Location"])
        assert answer.status_code == 302, answer.get_data(as_text=True)
        back = urlsplit(answer.headers["Location"])
        assert f"{back.scheme}://{back.netloc}{back.path}" == f"{base}/callback"
        assert "code" in parse_qs(back.query), back.query
        done = portal.get(f"/callback?{back.query}")
        assert done.status_code == 303, done.get_data(as_text=True)
        portal.idp = idp  # the same browser's identity cookies, for a later step-up
        return portal

    def set_up_totp(self, portal) -> str:
        """The signed-in user of ``portal`` sets up an authenticator app at identity's
        /account/security (in the same browser); its secret."""
        secret, _codes = set_up_totp(portal.idp)
        return secret

    def follow_step_up(self, portal, answer, totp_secret: str | None):
        """Follow the portal's redirect to /authorize with ``acr_values`` through identity:
        the second step with a code of ``totp_secret`` when identity asks for it (None: the
        user has no factor), then back to the portal's callback; the callback's answer."""
        assert answer.status_code == 302, answer.get_data(as_text=True)
        location = urlsplit(answer.headers["Location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == f"{ISSUER}/authorize"
        authorize = f"{location.path}?{location.query}"
        idp = portal.idp
        reply = idp.get(authorize)
        if reply.headers["Location"].startswith("/login/second-factor"):
            assert totp_secret is not None, "identity asked for a second factor"
            page = idp.get(reply.headers["Location"])
            # The next 30-second step: the step of the code that confirmed the app is used.
            code = pyotp.TOTP(totp_secret).at(time.time() + 30)
            done = idp.post("/login/second-factor", data={
                "code": code, "next": parse_qs(urlsplit(reply.headers["Location"]).query)[
                    "next"][0], "csrf_token": csrf_of(page.get_data(as_text=True))})
            assert done.status_code == 303, done.get_data(as_text=True)
            reply = idp.get(done.headers["Location"])
        assert reply.status_code == 302, reply.get_data(as_text=True)
        back = urlsplit(reply.headers["Location"])
        assert f"{back.scheme}://{back.netloc}{back.path}" == f"{PORTAL}/callback", back
        return portal.get(f"/callback?{back.query}")

"""Fixtures of the concurrency tests: PostgreSQL only, many requests released at once.

SQLite serialises every write (``BEGIN IMMEDIATE``), so a race there cannot show; these
tests need ``TEST_DATABASE_URL``. Without it they are skipped, except in CI (``CI=true``),
where a skip would hide that the decisions were never tried under concurrency: there
they fail.

Each competitor is a thread with its own Flask test client (so its own request, session
and pooled database connection), held at a ``threading.Barrier`` until all are ready.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from cryptography.fernet import Fernet
from sqlalchemy import select

from services.common.acr import MULTI_FACTOR
from services.common.db import upgrade
from services.common.events import Envelope, Sealer, utcnow
from services.identity import clients
from services.identity.enrollment.codes import hash_secret, normalize_answer
from services.identity.models import OutboxEvent as IdentityOutbox
from services.identity.models import SecurityAnswer
from services.identity.oidc import keys
from services.identity.schemas import ClientSchema
from services.identity.service import NewUser, create_user
from services.permissions.admins import designate_principal
from services.permissions.grants import Actor
from services.permissions.handlers import registry
from services.permissions.memberships import approve_membership
from services.permissions.models import MembershipRequest
from services.permissions.models import OutboxEvent as PermissionsOutbox

CONTENDERS = 20  # requests released together in every round
ROUNDS = 5
# Enough connections for every contender at once: a pool smaller than the crowd would
# queue them and hide the race.
POOL = CONTENDERS + 5
PASSWORD = "Velvet-Harbor-42!"
PIN = "4071"
WORD = "Ñandú Río"
ANSWERS = {"first_pet": "Rex", "birth_city": "Toluca", "first_job": "Cashier"}
REDIRECT = "https://rp.example.com/callback"
VERIFIER = "v" * 20 + "erifier-" + "x" * 30


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(autouse=True)
def _postgresql_only() -> None:
    if os.environ.get("TEST_DATABASE_URL"):
        return
    reason = ("concurrency tests need PostgreSQL (TEST_DATABASE_URL): SQLite serialises "
              "writes, so a race cannot happen there")
    if _ci():
        pytest.fail(f"{reason}; CI must set TEST_DATABASE_URL.", pytrace=False)
    pytest.skip(reason)


def _race(count: int, attempt: Callable[[int], Any]) -> list[Any]:
    """Run ``attempt(i)`` for i in 0..count-1, each in its own thread, all released at
    once; their results in order (an exception is re-raised)."""
    barrier = threading.Barrier(count, timeout=30)

    def contender(index: int) -> Any:
        barrier.wait()
        return attempt(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(contender, range(count)))


@pytest.fixture
def race() -> Callable[[int, Callable[[int], Any]], list[Any]]:
    """``race(count, attempt)``: see :func:`_race`."""
    return _race


@pytest.fixture
def contenders() -> int:
    """How many requests each round releases together."""
    return CONTENDERS


@pytest.fixture
def rounds() -> int:
    """How many times each race is run (a race may be won by the right one by luck)."""
    return ROUNDS


# --- identity ----------------------------------------------------------------------------

class Identity:
    """Identity (enrollment and lifecycle wired by its app factory), with helpers."""

    password = PASSWORD  # every user's
    answers = ANSWERS  # every user's security answers

    def __init__(self, app) -> None:
        self.app = app
        self.ctx = app.extensions["portico"]
        self.db = self.ctx.db

    def client(self):
        return self.app.test_client()

    @property
    def permissions_url(self) -> str:
        return self.ctx.settings.permissions_url.rstrip("/")

    def add_user(self, username: str) -> str:
        with self.db.transaction() as session:
            user = create_user(session, NewUser(
                username=username, password=PASSWORD, email=f"{username}@example.com",
                given_name="Ana", family_name="García", company_id="acme"))
            for question, answer in ANSWERS.items():
                session.add(SecurityAnswer(user_id=user.id, question=question,
                                           answer_hash=hash_secret(normalize_answer(answer))))
            return user.id

    def enroll(self, n: int) -> tuple[str, str]:
        """Enroll person ``n`` (their own email and company): (enrollment id, the token of
        the verification link)."""
        created = self.client().post("/v1/enrollments", json={
            "given_name": "Ana", "family_name": "García", "email": f"ana{n}@example.com",
            "phone": "+1 202 555 0143", "job_title": "Finance manager",
            "preferred_language": "en",
            "company": {"name": f"Acme {n}", "tax_id": f"12-34567{n:02d}",
                        "address": {"line1": "1 Main St", "city": "Springfield",
                                    "region": "IL", "postal_code": "62701", "country": "US"}},
            "account_numbers": ["378282246310005"], "pin": PIN, "verification_word": WORD})
        assert created.status_code == 201, created.get_json()
        enrollment_id = created.get_json()["enrollment_id"]
        [submitted] = [e for e in self.events("identity.enrollment.submitted")
                       if e.data["enrollment_id"] == enrollment_id]
        token = re.search(r"token=([^&]+)", self.unseal(submitted)["verification_url"]).group(1)
        return enrollment_id, token

    def access_codes(self, enrollment_id: str) -> list[str]:
        """The access codes issued to the enrollment (from the welcome emails' events)."""
        return [self.unseal(e)["access_code"] for e in self.events("identity.access_code.issued")
                if e.data["enrollment_id"] == enrollment_id]

    def enrollment_with_code(self, n: int) -> tuple[str, str]:
        """Enroll person ``n`` and follow the verification link: (enrollment id, access
        code)."""
        enrollment_id, token = self.enroll(n)
        verified = self.client().post("/v1/enrollments/verify", json={"token": token})
        assert verified.get_json()["status"] == "code_issued", verified.get_json()
        [code] = self.access_codes(enrollment_id)
        return enrollment_id, code

    def activate(self, client, code: str, pin: str = PIN, word: str = WORD):
        return client.post("/v1/activation", json={"access_code": code, "pin": pin,
                                                    "verification_word": word})

    def login_form(self) -> tuple[Any, Callable[[str, str], Any]]:
        """A browser that has opened the login page, and ``post(username, password)``."""
        browser = self.client()
        page = browser.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)

        def post(username: str, password: str):
            return browser.post("/login", data={"username": username, "password": password,
                                                "csrf_token": csrf, "next": "/account"})

        return browser, post

    def add_client(self) -> tuple[str, dict[str, str]]:
        """A confidential first-party client: (client id, its Basic auth header)."""
        spec = {"name": "Relying party", "redirect_uris": [REDIRECT],
                "grant_types": ["authorization_code", "refresh_token"],
                "scope": "openid profile offline_access entitlements", "first_party": True}
        with self.db.transaction() as session:
            client, secret = clients.create_client(
                session, self.ctx.settings.client_secret_pepper, ClientSchema().load(spec))
            client_id = client.client_id
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        return client_id, {"Authorization": f"Basic {basic}"}

    def authorization_code(self, client_id: str, username: str,
                           scope: str = "openid offline_access") -> str:
        """Sign ``username`` in and authorize ``client_id`` (PKCE S256): the code."""
        browser, post = self.login_form()
        path = "/authorize?" + urlencode({
            "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
            "scope": scope, "state": "st", "nonce": uuid.uuid4().hex,
            "code_challenge": create_s256_code_challenge(VERIFIER),
            "code_challenge_method": "S256"})
        assert post(username, PASSWORD).status_code == 303
        answer = browser.get(path)
        assert answer.status_code == 302, answer.text
        return parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]

    def redeem(self, code: str, auth: dict[str, str]):
        return self.client().post("/token", headers=auth, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "code_verifier": VERIFIER})

    def events(self, type_: str) -> list[Envelope]:
        with self.db.read() as session:
            rows = session.scalars(select(IdentityOutbox).order_by(IdentityOutbox.id)).all()
            found = [Envelope.from_json(r.payload) for r in rows]
        return [e for e in found if e.type == type_]

    def unseal(self, envelope: Envelope) -> dict[str, Any]:
        return Sealer(self.ctx.settings.event_sealing_key).unseal(envelope.sealed)

    def sealed_token(self, type_: str, field: str) -> str:
        """The ``token=`` of the link in the last ``type_`` event's sealed ``field``."""
        url = self.unseal(self.events(type_)[-1])[field]
        return re.search(r"token=([^&]+)", url).group(1)


@pytest.fixture
def identity(make_app) -> Identity:
    app = make_app("identity", session_cookie_secure=False, key_activation_delay=0,
                   rate_limits_enabled=False, db_pool_size=POOL)
    settings = app.extensions["portico"].settings
    with app.extensions["portico"].db.transaction() as session:
        keys.ensure_keys(session, Fernet(settings.key_encryption_key))
    return Identity(app)


# --- permissions -------------------------------------------------------------------------

class Permissions:
    """Permissions on its migrated database; users arrive as identity's events."""

    def __init__(self, app, issuer) -> None:
        self.app = app
        self.issuer = issuer
        self.db = app.extensions["portico"].db

    def client(self):
        return self.app.test_client()

    def activate(self, user_id: str, company_id: str) -> None:
        data = {"user_id": user_id, "enrollment_id": f"enr-{user_id}",
                "email": f"{user_id}@example.com", "given_name": user_id.title(),
                "family_name": "Tester", "phone": "+15550100", "job_title": "Manager",
                "preferred_language": "en", "company_id": company_id,
                "company_name": f"Company {company_id}", "accounts": [],
                "notifications": {"status_changes": True}}
        with self.db.transaction() as session:
            registry(session, Envelope.new("identity.user.activated", "identity", data,
                                           subject=user_id))
        with self.db.transaction() as session:  # a later member is admitted by the help desk
            pending = session.scalar(select(MembershipRequest.id).where(
                MembershipRequest.user_id == user_id, MembershipRequest.status == "pending"))
            if pending is not None:
                approve_membership(session, request_id=pending, comment="test set-up",
                                   actor=Actor("operator", helpdesk=True), now=utcnow())

    def designate(self, company_id: str, user_id: str) -> None:
        with self.db.transaction() as session:
            designate_principal(session, company_id=company_id, user_id=user_id,
                                actor=Actor("operator", helpdesk=True, supervisor=True),
                                why="test set-up", now=utcnow())

    def headers(self, sub: str) -> dict[str, str]:
        # Signed in with a second factor: approving asks for it (entitlements.approve).
        token = self.issuer.issue(sub=sub, aud="permissions", acr=MULTI_FACTOR)
        return {"Authorization": f"Bearer {token}"}

    def events(self, type_: str) -> list[dict[str, Any]]:
        with self.db.read() as session:
            rows = session.scalars(select(PermissionsOutbox)
                                   .order_by(PermissionsOutbox.id)).all()
            found = [json.loads(r.payload) for r in rows]
        return [e for e in found if e["type"] == type_]


@pytest.fixture
def permissions(make_app, database_url, token_issuer) -> Permissions:
    url = database_url("permissions")
    upgrade("permissions", url)
    app = make_app("permissions", database_url=url, db_pool_size=POOL)
    return Permissions(app, token_issuer)

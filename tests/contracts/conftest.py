"""Each service under contract test: its app (real database + Redis), the credentials its
API needs, and a few real rows that path parameters can point at.

The schemathesis schema of a service is loaded from the app's own ``/openapi.json``.
"""

from __future__ import annotations

import base64
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from flask import Flask

from services.common.db import upgrade
from services.common.events import Envelope, utcnow


@dataclass
class Target:
    """One service under test and how to call it."""

    app: Flask
    bearer: str
    basic: tuple[str, str] | None = None
    # path parameter name → an id that exists, tried besides the generated one.
    seeds: dict[str, str] = field(default_factory=dict)
    # operation label → a bearer token other than ``bearer`` (e.g. one identity signed).
    bearer_for: dict[str, str] = field(default_factory=dict)
    # operation label → how often each status code answered.
    statuses: dict[str, Counter[int]] = field(default_factory=dict)

    def schema(self) -> Any:
        schema = schemathesis.openapi.from_wsgi("/openapi.json", self.app)
        assert schema.raw_schema["paths"], "the service documents no operation"
        return schema

    def headers_for(self, operation: Any) -> dict[str, str]:
        """The credentials an operation declares: bearer, HTTP Basic client auth, or none."""
        schemes = {name for requirement in operation.definition.raw.get("security", [])
                   for name in requirement}
        if not schemes:
            schemes = {name for requirement in operation.schema.raw_schema.get("security", [])
                       for name in requirement}
        if schemes & {"bearer", "bearerAuth"}:
            token = self.bearer_for.get(operation.label, self.bearer)
            return {"Authorization": f"Bearer {token}"}
        if "clientSecretBasic" in schemes and self.basic:
            raw = f"{self.basic[0]}:{self.basic[1]}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        return {}


# --- identity -----------------------------------------------------------------------------


@pytest.fixture
def identity_target(make_app, token_issuer) -> Target:
    """Admin API tokens come from ``token_issuer`` (identity's JWKS_URL is mocked);
    ``/userinfo`` gets an access token identity signed itself for a real user."""
    from cryptography.fernet import Fernet

    from services.identity import clients
    from services.identity.oidc import keys
    from services.identity.oidc.tokens import mint_access_token
    from services.identity.service import NewUser, create_user

    app = make_app("identity", session_cookie_secure=False, key_activation_delay=0)
    ctx = app.extensions["portico"]
    with ctx.db.transaction() as session:
        keys.ensure_keys(session, Fernet(ctx.settings.key_encryption_key))
        user = create_user(session, NewUser(
            username="contract.user", password="Velvet-Harbor-42!",
            email="contract.user@example.com", given_name="Ana", family_name="Contract",
            company_id="acme"))
        user_id = user.id
        client, secret = clients.create_client(
            session, ctx.settings.client_secret_pepper, clients.ClientSpec(
                name="contract-machine", grant_types=["client_credentials"],
                scope="tracking.read", allowed_audiences=["tracking"]),
            client_id="contract-machine")
    assert secret is not None
    token = token_issuer.issue(sub="contract-admin", client_id="contract-admin", aud="identity",
                               scope="iam.admin iam.helpdesk")
    person = token_issuer.issue(sub=user_id, aud="identity", scope="openid profile")
    with app.app_context():
        provider = app.extensions["portico"]
        own = mint_access_token(
            keys.Keyring(provider.db, provider.settings.key_encryption_key),
            issuer=provider.settings.issuer, sub=user_id, client_id="contract-machine",
            aud="identity", scope="openid profile email phone", ttl=600).value
    return Target(app, token, basic=("contract-machine", secret),
                  seeds={"client_id": "contract-machine", "user_id": user_id},
                  bearer_for={"GET /userinfo": own, "POST /userinfo": own,
                              **{f"{verb} {path}": person for verb, path in (
                                  ("GET", "/v1/me"), ("PATCH", "/v1/me"),
                                  ("POST", "/v1/me/password"),
                                  ("POST", "/v1/me/email-verifications"))}})


@pytest.fixture
def identity_schema(identity_target: Target) -> Any:
    return identity_target.schema()


# --- permissions --------------------------------------------------------------------------


@pytest.fixture
def permissions_target(make_app, database_url, token_issuer) -> Target:
    from services.permissions.handlers import registry
    from services.permissions.platform import operator_grants_platform_role

    url = database_url("permissions")
    upgrade("permissions", url)  # the migrations seed the entitlement catalog
    app = make_app("permissions", database_url=url)
    db = app.extensions["portico"].db
    for user_id, company_id in (("hd-1", None), ("u-1", "c-1")):
        data = {"user_id": user_id, "enrollment_id": f"enr-{user_id}",
                "email": f"{user_id}@example.com", "given_name": "Test", "family_name": "User",
                "phone": "+15550100", "job_title": "Manager", "preferred_language": "en",
                "company_id": company_id, "company_name": f"Company {company_id}",
                "accounts": [], "notifications": {"status_changes": True}}
        with db.transaction() as session:
            registry(session, Envelope.new("identity.user.activated", "identity", data,
                                           subject=user_id))
    with db.transaction() as session:
        for role in ("helpdesk_supervisor", "platform_admin"):
            operator_grants_platform_role(session, user_id="hd-1", role=role, why="contract",
                                          now=utcnow())
    token = token_issuer.issue(sub="hd-1", aud="permissions",
                               scope="permissions.check permissions.read permissions.admin")
    return Target(app, token, seeds={"user_id": "u-1", "company_id": "c-1"})


@pytest.fixture
def permissions_schema(permissions_target: Target) -> Any:
    return permissions_target.schema()


# --- tracking -----------------------------------------------------------------------------


@pytest.fixture
def tracking_target(make_app, token_issuer) -> Target:
    app = make_app("tracking")
    token = token_issuer.issue(sub="cards-app", client_id="cards-app", aud="tracking",
                               scope="tracking.write tracking.read")
    owner = token_issuer.issue(sub="u-1", aud="tracking", scope="openid tracking.read",
                               company_id="c-1")
    created = app.test_client().post(
        "/v1/transactions", headers={"Authorization": f"Bearer {token}"},
        json={"type": "card_cancellation", "owner_user_id": "u-1", "company_id": "c-1",
              "title_en": "Card cancellation", "title_es": "Cancelación de tarjeta"})
    assert created.status_code == 201, created.get_data(as_text=True)
    return Target(app, token, seeds={"tracking_number": created.get_json()["tracking_number"]},
                  bearer_for={"GET /v1/transactions/{tracking_number}": owner})


@pytest.fixture
def tracking_schema(tracking_target: Target) -> Any:
    return tracking_target.schema()


# --- notifier -----------------------------------------------------------------------------


@pytest.fixture
def notifier_target(make_app, token_issuer) -> Target:
    app = make_app("notifier")
    token = token_issuer.issue(sub="ops-client", client_id="ops-client", aud="notifier",
                               scope="notifier.admin")
    return Target(app, token)


@pytest.fixture
def notifier_schema(notifier_target: Target) -> Any:
    return notifier_target.schema()

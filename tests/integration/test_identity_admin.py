"""Clients admin API, iamctl, rate limits and fail-closed behaviour of identity."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet

from services.common.db import upgrade
from services.identity.cli import commands
from services.identity.oidc import keys
from tests.integration.helpers.oidc import (
    PASSWORD,
    add_client,
    add_user,
    authorize,
    basic,
    code_from,
    code_params,
    csrf_of,
    exchange,
)

ADMIN = {"scope": "iam.admin", "aud": "identity"}


def test_clients_admin_api_crud_and_secret_rotation(make_app, token_issuer):
    app = make_app("identity")
    api = app.test_client()
    auth = {"Authorization": "Bearer " + token_issuer.issue(**ADMIN)}
    created = api.post("/admin/v1/clients", headers=auth, json={
        "name": "Portal", "redirect_uris": ["https://portal.example.com/cb"],
        "grant_types": ["authorization_code", "refresh_token"],
        "scope": "openid profile"})
    assert created.status_code == 201, created.json
    client_id, secret = created.json["client_id"], created.json["client_secret"]
    assert len(secret) >= 43  # 256 bits, url-safe base64
    assert created.headers["Cache-Control"] == "no-store"

    read = api.get(f"/admin/v1/clients/{client_id}", headers=auth)
    assert read.status_code == 200 and "client_secret" not in read.json
    assert [c["client_id"] for c in api.get("/admin/v1/clients", headers=auth).json["items"]] == [client_id]

    updated = api.put(f"/admin/v1/clients/{client_id}", headers=auth, json={
        "name": "Portal 2", "redirect_uris": ["https://portal.example.com/cb2"],
        "scope": "openid"})
    assert updated.status_code == 200 and updated.json["name"] == "Portal 2"

    rotated = api.post(f"/admin/v1/clients/{client_id}/secret", headers=auth)
    assert rotated.status_code == 200 and rotated.json["client_secret"] != secret

    assert api.delete(f"/admin/v1/clients/{client_id}", headers=auth).status_code == 204
    assert api.get(f"/admin/v1/clients/{client_id}", headers=auth).status_code == 404


def test_clients_admin_api_validates_and_guards(make_app, token_issuer):
    app = make_app("identity")
    api = app.test_client()
    assert api.get("/admin/v1/clients").status_code == 401
    weak = {"Authorization": "Bearer " + token_issuer.issue(scope="openid", aud="identity")}
    assert api.get("/admin/v1/clients", headers=weak).status_code == 403
    auth = {"Authorization": "Bearer " + token_issuer.issue(**ADMIN)}
    bad = api.post("/admin/v1/clients", headers=auth, json={
        "name": "Bad", "redirect_uris": ["http://evil.example.com/cb", "/relative",
                                         "https://ok.example.com/cb#frag"]})
    assert bad.status_code == 422
    assert bad.headers["Content-Type"] == "application/problem+json"
    assert set(bad.json["errors"]) == {"redirect_uris.0", "redirect_uris.1", "redirect_uris.2"}
    loopback = api.post("/admin/v1/clients", headers=auth, json={
        "name": "CLI", "redirect_uris": ["http://127.0.0.1:9000/cb"],
        "token_endpoint_auth_method": "none"})
    assert loopback.status_code == 201 and "client_secret" not in loopback.json


def test_client_secret_is_stored_as_keyed_digest(make_app):
    from services.identity.oidc.models import OAuthClient

    app = make_app("identity")
    client_id, secret = add_client(app)
    with app.extensions["portico"].db.read() as session:
        row = session.get(OAuthClient, client_id)
        assert secret not in (row.secret_digest or "")
        assert len(row.secret_digest) == 64


def test_redis_down_fails_closed_with_503(make_app):
    app = make_app("identity", redis_url="redis://127.0.0.1:1/0")
    api = app.test_client()
    login = api.post("/login", data={"username": "a", "password": "b", "csrf_token": "x"})
    assert login.status_code == 503
    token = api.post("/token", data={"grant_type": "client_credentials"},
                     headers=basic("c", "s"))
    assert token.status_code == 503
    assert token.json["error"] == "temporarily_unavailable"


def test_login_is_rate_limited_per_ip(make_app):
    app = make_app("identity", session_cookie_secure=False, login_rate_limit="3 per minute")
    add_user(app)
    browser = app.test_client()
    csrf = csrf_of(browser.get("/login").get_data(as_text=True))
    answers = [browser.post("/login", data={"username": "alice", "password": "nope-nope-nope",
                                            "csrf_token": csrf}) for _ in range(4)]
    assert [a.status_code for a in answers[:3]] == [401, 401, 401]
    assert answers[3].status_code == 429
    assert "Retry-After" in answers[3].headers


def _failed_logins(app, count, *, forwarded_for=None):
    """``count`` wrong-password logins from one browser, all reaching the app from the
    ingress controller's address (10.0.0.5), with the ``X-Forwarded-For`` it adds."""
    browser = app.test_client()
    environ = {"REMOTE_ADDR": "10.0.0.5"}
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    csrf = csrf_of(browser.get("/login", environ_base=environ, headers=headers)
                   .get_data(as_text=True))
    return [browser.post("/login", environ_base=environ, headers=headers,
                         data={"username": "alice", "password": "nope-nope-nope",
                               "csrf_token": csrf}).status_code for _ in range(count)]


def test_behind_a_trusted_proxy_each_client_ip_has_its_own_login_limit(make_app):
    app = make_app("identity", session_cookie_secure=False, login_rate_limit="3 per minute",
                   trusted_proxy_hops=1)
    add_user(app)
    assert _failed_logins(app, 4, forwarded_for="198.51.100.7") == [401, 401, 401, 429]
    # Another employee behind the same ingress is not locked out by the first one.
    assert _failed_logins(app, 1, forwarded_for="203.0.113.9") == [401]
    # Only the hop the ingress appended counts: a forged leading entry changes nothing.
    assert _failed_logins(app, 1, forwarded_for="203.0.113.50, 198.51.100.7") == [429]


def test_without_trusted_proxies_x_forwarded_for_is_ignored(make_app):
    app = make_app("identity", session_cookie_secure=False, login_rate_limit="3 per minute")
    add_user(app)
    assert _failed_logins(app, 3, forwarded_for="198.51.100.7") == [401, 401, 401]
    # A client cannot buy a fresh budget by sending a header of its own.
    assert _failed_logins(app, 1, forwarded_for="203.0.113.9") == [429]


def _machine_client(app):
    """One machine client of ``app`` (made with ``key_activation_delay=0``), and keys."""
    ctx = app.extensions["portico"]
    with ctx.db.transaction() as session:
        keys.ensure_keys(session, Fernet(ctx.settings.key_encryption_key))
    return add_client(app, grant_types=["client_credentials"], scope="api.read",
                      redirect_uris=[], allowed_audiences=["tracking"])


def test_token_endpoint_is_rate_limited_per_authenticated_client(make_app):
    app = make_app("identity", token_rate_limit_client="2 per minute", key_activation_delay=0)
    client_id, secret = _machine_client(app)
    api = app.test_client()
    # The view's path (a resource indicator) counts the client as the fast route does.
    answers = [api.post("/token", data={"grant_type": "client_credentials",
                                        "resource": "tracking"},
                        headers=basic(client_id, secret)) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json == {"error": "too_many_requests",
                               "error_description": "Too many requests: slow down."}
    assert int(answers[2].headers["Retry-After"]) > 0
    assert answers[2].headers["Cache-Control"] == "no-store"


def test_strangers_naming_a_client_cannot_spend_its_token_budget(make_app):
    """Issue 24: posting a client's id 300 times a minute locked it out of /token."""
    app = make_app("identity", token_rate_limit_client="2 per minute",
                   token_rate_limit_ip="6 per minute", key_activation_delay=0)
    client_id, secret = _machine_client(app)
    api = app.test_client()
    stranger = {"REMOTE_ADDR": "203.0.113.66"}
    forged = [api.post("/token", data=data, environ_base=stranger, headers=headers).status_code
              for data, headers in [({"grant_type": "client_credentials"},
                                     basic(client_id, "guess")),
                                    ({"grant_type": "client_credentials",
                                      "client_id": client_id}, {}),
                                    ({"grant_type": "client_credentials", "client_id": client_id,
                                      "client_secret": "guess"}, {})] * 2]
    assert forged == [401] * 6
    # The stranger's own address is what runs out (unauthenticated failures count there).
    assert api.post("/token", data={"grant_type": "client_credentials"}, environ_base=stranger,
                    headers=basic(client_id, "guess")).status_code == 429
    # The client itself still has its whole budget.
    real = [api.post("/token", data={"grant_type": "client_credentials"},
                     headers=basic(client_id, secret)).status_code for _ in range(3)]
    assert real[2] == 429 and 429 not in real[:2]


def _sign_ins(app, count, password=PASSWORD):
    """``count`` sign-ins of alice, each from its own browser, all from one address (an
    office's NAT)."""
    statuses = []
    for _ in range(count):
        browser = app.test_client()
        csrf = csrf_of(browser.get("/login").get_data(as_text=True))
        statuses.append(browser.post("/login", data={
            "username": "alice", "password": password, "csrf_token": csrf}).status_code)
    return statuses


def test_successful_sign_ins_from_one_address_do_not_count_as_failures(make_app):
    """Issue 24: the 11th colleague behind one office NAT signing in got 429."""
    app = make_app("identity", session_cookie_secure=False, login_rate_limit="3 per minute",
                   login_success_rate_limit="6 per minute")
    add_user(app)
    assert _sign_ins(app, 6) == [303] * 6
    # The high ceiling for successes is a ceiling still: 429 (problem+json, Retry-After).
    refused = app.test_client()
    csrf = csrf_of(refused.get("/login").get_data(as_text=True))
    answer = refused.post("/login", data={"username": "alice", "password": PASSWORD,
                                          "csrf_token": csrf})
    assert answer.status_code == 429
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert int(answer.headers["Retry-After"]) > 0
    assert answer.json["type"].endswith("too-many-requests")


def test_failed_sign_ins_are_limited_per_address_whatever_the_successes(make_app):
    app = make_app("identity", session_cookie_secure=False, login_rate_limit="3 per minute")
    add_user(app)
    add_user(app, username="bob")
    assert _sign_ins(app, 2) == [303, 303]
    assert _sign_ins(app, 4, password="nope-nope-nope") == [401, 401, 401, 429]
    # Failures reached: even a right password waits (per address, not per account).
    assert _sign_ins(app, 1) == [429]


def test_login_never_reveals_whether_a_username_exists(make_app):
    app = make_app("identity", session_cookie_secure=False)
    add_user(app)
    browser = app.test_client()
    csrf = csrf_of(browser.get("/login").get_data(as_text=True))
    unknown = browser.post("/login", data={"username": "nobody", "password": PASSWORD,
                                           "csrf_token": csrf})
    wrong = browser.post("/login", data={"username": "alice", "password": "wrong-password!",
                                         "csrf_token": csrf})
    text = lambda r: re.sub(r'value="[^"]*"', "", r.get_data(as_text=True))  # noqa: E731
    assert unknown.status_code == wrong.status_code == 401
    assert text(unknown) == text(wrong)
    forged = browser.post("/login", data={"username": "alice", "password": PASSWORD,
                                          "csrf_token": "forged"})
    assert forged.status_code == 400


def test_login_renews_the_session_id_and_sets_safe_cookie(make_app):
    app = make_app("identity", session_cookie_secure=True)
    add_user(app)
    browser = app.test_client()
    page = browser.get("/login")
    first = page.headers["Set-Cookie"]
    assert "HttpOnly" in first and "SameSite=Lax" in first and "Secure" in first
    done = browser.post("/login", data={"username": "ALICE", "password": PASSWORD,
                                        "csrf_token": csrf_of(page.get_data(as_text=True))})
    assert done.status_code == 303
    assert done.headers["Set-Cookie"].split(";")[0] != first.split(";")[0]
    assert page.headers["Referrer-Policy"] == "no-referrer"


def _run(args, env):
    from services.cli import main

    return CliRunner().invoke(main, args, env=env, catch_exceptions=False)


def test_iamctl_bootstrap_clients_users_and_keys(database_url, redis_url, namespace):
    url = database_url("identity")
    env = {"DATABASE_URL": url, "REDIS_URL": redis_url, "REDIS_NAMESPACE": namespace,
           "LOG_JSON": "false"}
    assert {c.name for c in commands} >= {"bootstrap", "clients", "users", "keys", "sweep-inactive"}
    refused = _run(["bootstrap"], env)
    assert refused.exit_code == 1 and "not migrated" in refused.output
    upgrade("identity", url)

    boot = _run(["bootstrap"], env)
    assert boot.exit_code == 0, boot.output
    body = json.loads(boot.output)
    assert body["admin_client"]["client_secret"] and body["administrator"]["password"]

    created = _run(["clients", "create", "--name", "Portal", "--redirect-uri",
                    "http://127.0.0.1:8000/callback", "--grant", "authorization_code",
                    "--grant", "refresh_token", "--scope", "openid profile email offline_access"],
                   env)
    assert created.exit_code == 0, created.output
    client = json.loads(created.output)
    assert client["client_secret"] and client["redirect_uris"] == ["http://127.0.0.1:8000/callback"]
    assert client["grant_types"] == ["authorization_code", "refresh_token"]
    assert client["token_endpoint_auth_method"] == "client_secret_basic"

    stepped = _run(["clients", "create", "--name", "Payments", "--redirect-uri",
                    "http://127.0.0.1:8000/pay", "--default-acr", "urn:portico:acr:mfa"], env)
    assert stepped.exit_code == 0, stepped.output
    assert json.loads(stepped.output)["default_acr_values"] == ["urn:portico:acr:mfa"]
    unknown = _run(["clients", "create", "--name", "Gold", "--redirect-uri",
                    "http://127.0.0.1:8000/gold", "--default-acr", "urn:example:gold"], env)
    assert unknown.exit_code == 2 and "--default-acr" in unknown.output

    public = json.loads(_run(["clients", "create", "--name", "SPA", "--redirect-uri",
                              "http://localhost:3000/cb", "--public"], env).output)
    assert "client_secret" not in public and public["token_endpoint_auth_method"] == "none"

    # A resource server registered under its audience, so that it may introspect.
    tracking = ["clients", "create", "--name", "Tracking", "--grant", "client_credentials",
                "--client-id", "tracking"]
    assert json.loads(_run(tracking, env).output)["client_id"] == "tracking"
    again = _run(tracking, env)
    assert again.exit_code == 1 and "exists already" in again.output
    malformed = _run([*tracking[:-1], "no spaces"], env)
    assert malformed.exit_code == 1 and "--client-id" in malformed.output

    user = _run(["users", "create", "--username", "bob", "--password", "a-long-passphrase-1",
                 "--email", "bob@example.com", "--given-name", "Bob", "--family-name", "Builder",
                 "--company-id", "acme"], env)
    assert user.exit_code == 0, user.output
    assert json.loads(user.output)["username"] == "bob"
    weak = _run(["users", "create", "--username", "eve", "--password", "short", "--email",
                 "eve@example.com", "--given-name", "E", "--family-name", "V"], env)
    assert weak.exit_code == 1 and "12 characters" in weak.output

    rotated = _run(["keys", "rotate"], env)
    assert rotated.exit_code == 0, rotated.output
    assert {r["alg"] for r in json.loads(rotated.output)["rotated"]} == {"ES256", "RS256"}


@pytest.mark.parametrize("how", ["delete", "disable"])
def test_deleting_or_disabling_a_client_revokes_its_tokens(make_app, token_issuer, how):
    """Issue 24: a deleted client's access tokens stayed ``active`` at introspection (and
    valid at every service) until they expired; its refresh tokens stayed usable."""
    from sqlalchemy import select

    from services.identity.oidc.models import RefreshToken
    from tests.support import watch_flask

    app = make_app("identity", session_cookie_secure=False, key_activation_delay=0)
    _machine_client(app)  # the signing keys
    add_user(app)
    client_id, secret = add_client(app, allowed_audiences=["tracking"])
    resource_server = basic(*add_client(app, client_id="tracking",
                                        grant_types=["client_credentials"], scope="api.read",
                                        redirect_uris=[]))
    code = code_from(authorize(app.test_client(), code_params(client_id)))
    tokens = exchange(app, client_id, secret, code).json
    _, flask_only = watch_flask(app)
    api = app.test_client()

    def introspected():
        return [c.post("/introspect", data={"token": tokens["access_token"]},
                       headers=resource_server).json for c in (api, flask_only)]

    assert [seen["active"] for seen in introspected()] == [True, True]
    admin = {"Authorization": "Bearer " + token_issuer.issue(**ADMIN)}
    if how == "delete":
        assert api.delete(f"/admin/v1/clients/{client_id}", headers=admin).status_code == 204
    else:
        disabled = api.post(f"/admin/v1/clients/{client_id}/disable", headers=admin)
        assert disabled.status_code == 200 and disabled.json["disabled_at"]
    assert introspected() == [{"active": False}, {"active": False}]
    refresh = api.post("/token", data={"grant_type": "refresh_token",
                                       "refresh_token": tokens["refresh_token"]},
                       headers=basic(client_id, secret))
    assert refresh.status_code == 401 and refresh.json["error"] == "invalid_client"
    userinfo = api.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert userinfo.status_code == 401
    with app.extensions["portico"].db.read() as session:
        revoked = session.scalars(select(RefreshToken.revoked_at).where(
            RefreshToken.client_id == client_id)).all()
    assert revoked and all(when is not None for when in revoked)
    if how == "disable":  # enabled again: it may sign users in; what was revoked stays so
        assert api.post(f"/admin/v1/clients/{client_id}/enable",
                        headers=admin).json["disabled_at"] is None
        code = code_from(authorize(app.test_client(), code_params(client_id)))
        assert exchange(app, client_id, secret, code).status_code == 200
        assert introspected() == [{"active": False}, {"active": False}]

"""POST /token and /introspect below Flask (identity/oidc/fast.py): the plain requests
are answered there, and every request, plain or not, gets the answer authlib's server
gives it through the views."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest
from cryptography.fernet import Fernet
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from services.common.db import is_postgresql
from services.identity.oidc import fast, keys
from services.identity.oidc.keys import SigningKeyUnavailable
from services.identity.oidc.models import RefreshToken
from tests.integration.helpers.oidc import (
    add_client,
    add_user,
    authorize,
    basic,
    code_from,
    code_params,
    exchange,
)
from tests.support import watch_flask

# Claims that differ between two tokens issued for the same request.
PER_TOKEN = {"jti", "iat", "nbf", "exp"}


class Paths:
    """The app as served (fast routes first) and its Flask app alone."""

    def __init__(self, app) -> None:
        self.app = app
        self.entered, self.flask_only = watch_flask(app)
        self.served = app.test_client()
        self.keys = KeySet.import_key_set(self.served.get("/jwks").json)

    def both(self, path: str, data, headers=None):
        headers = dict(headers or {})
        if isinstance(data, list):  # repeated fields: the form as sent
            data = urlencode(data)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        return [client.post(path, data=data, headers=headers)
                for client in (self.served, self.flask_only)]

    def claims(self, token: str) -> dict:
        decoded = dict(jwt.decode(token, self.keys).claims)
        return {k: v for k, v in decoded.items() if k not in PER_TOKEN}


def _shape(answer) -> tuple:
    return (answer.status_code, answer.headers.get("Content-Type"),
            answer.headers.get("Cache-Control"), answer.headers.get("Pragma"),
            answer.headers.get("WWW-Authenticate"))


def assert_alike(paths: Paths, served, view) -> None:
    """The same answer, but for what makes each issued token unique."""
    assert _shape(served) == _shape(view)
    body, expected = dict(served.json), dict(view.json)
    for name in ("access_token", "refresh_token"):
        assert (name in body) == (name in expected), name
    body.pop("refresh_token", None)
    expected.pop("refresh_token", None)
    if "access_token" in body:
        served_claims = paths.claims(body.pop("access_token"))
        view_claims = paths.claims(expected.pop("access_token"))
        # Each side signed in on its own: the sign-in times may fall in different seconds.
        assert abs(served_claims.pop("auth_time", 0) - view_claims.pop("auth_time", 0)) <= 5
        assert served_claims == view_claims
    assert body == expected


@pytest.fixture
def paths(idp) -> Paths:
    return Paths(idp)


@pytest.fixture
def machine(idp):
    return add_client(idp, grant_types=["client_credentials"], scope="api.read api.write",
                      redirect_uris=[], allowed_audiences=["permissions", "tracking"])


def test_plain_client_credentials_and_introspection_never_enter_flask(paths, idp, machine):
    client_id, secret = machine
    post_id, post_secret = add_client(idp, grant_types=["client_credentials"], scope="api.read",
                                      redirect_uris=[], allowed_audiences=["tracking"],
                                      token_endpoint_auth_method="client_secret_post")
    served = paths.served
    by_basic = served.post("/token", data={"grant_type": "client_credentials"},
                           headers=basic(client_id, secret))
    by_post = served.post("/token", data={"grant_type": "client_credentials",
                                          "client_id": post_id, "client_secret": post_secret,
                                          "scope": "api.read"})
    assert by_basic.status_code == by_post.status_code == 200
    assert by_basic.headers["Cache-Control"] == "no-store"
    claims = paths.claims(by_basic.json["access_token"])
    assert claims["aud"] == ["permissions", "tracking"] and claims["sub"] == client_id
    assert claims["scope"] == by_basic.json["scope"] == "api.read api.write"
    seen = served.post("/introspect", data={"token": by_basic.json["access_token"],
                                            "token_type_hint": "access_token"},
                       headers=basic(client_id, secret))
    assert seen.json["active"] is True and seen.json["client_id"] == client_id
    assert paths.entered == []


def _token_cases(machine, public_id):
    client_id, secret = machine
    plain = {"grant_type": "client_credentials"}
    return [
        ("plain", plain, basic(client_id, secret)),
        ("narrower scope", {**plain, "scope": "api.read"}, basic(client_id, secret)),
        ("scope too wide", {**plain, "scope": "iam.admin"}, basic(client_id, secret)),
        ("wrong secret", plain, basic(client_id, "wrong")),
        ("unknown client", plain, basic("nobody", secret)),
        ("no credentials", plain, {}),
        ("a bearer token", plain, {"Authorization": "Bearer " + secret}),
        ("credentials two ways", {**plain, "client_id": client_id, "client_secret": secret},
         basic(client_id, secret)),
        ("post for a basic client", {**plain, "client_id": client_id, "client_secret": secret},
         {}),
        ("a public client", {**plain, "client_id": public_id}, {}),
        ("a resource", {**plain, "resource": "tracking"}, basic(client_id, secret)),
        ("a foreign resource", {**plain, "resource": "notifier"}, basic(client_id, secret)),
        ("repeated scope", [("grant_type", "client_credentials"), ("scope", "api.read"),
                            ("scope", "api.write")], basic(client_id, secret)),
        ("no grant type", {"scope": "api.read"}, basic(client_id, secret)),
        ("another grant", {"grant_type": "password", "username": "a", "password": "b"},
         basic(client_id, secret)),
        ("an unknown field", {**plain, "extra": "1"}, basic(client_id, secret)),
    ]


def test_every_token_request_gets_the_views_answer(paths, idp, machine):
    public_id, _ = add_client(idp, token_endpoint_auth_method="none")
    for name, data, headers in _token_cases(machine, public_id):
        served, view = paths.both("/token", data, headers)
        assert served.status_code == view.status_code, name
        assert_alike(paths, served, view)


def test_a_grant_the_client_lacks_is_refused_as_the_view_refuses_it(paths, idp):
    client_id, secret = add_client(idp)  # code + refresh only
    served, view = paths.both("/token", {"grant_type": "client_credentials"},
                              basic(client_id, secret))
    assert served.status_code == 400 and served.json["error"] == "unauthorized_client"
    assert_alike(paths, served, view)


def test_every_introspection_gets_the_views_answer(paths, idp, machine):
    client_id, secret = machine
    other_id, other_secret = add_client(idp, grant_types=["client_credentials"],
                                        scope="api.read", redirect_uris=[],
                                        allowed_audiences=["notifier"])
    api = paths.served
    token = api.post("/token", data={"grant_type": "client_credentials"},
                     headers=basic(client_id, secret)).json["access_token"]
    revoked = api.post("/token", data={"grant_type": "client_credentials"},
                       headers=basic(client_id, secret)).json["access_token"]
    assert api.post("/revoke", data={"token": revoked}, headers=basic(client_id, secret)
                    ).status_code == 200
    mine = basic(client_id, secret)
    cases = [
        ({"token": token}, mine),
        ({"token": token, "token_type_hint": "access_token"}, mine),
        ({"token": token, "token_type_hint": "refresh_token"}, mine),
        ({"token": token, "token_type_hint": "id_token"}, mine),
        ({"token": revoked}, mine),
        ({"token": token}, basic(other_id, other_secret)),
        ({"token": token}, basic(client_id, "wrong")),
        ({"token": token}, {}),
        ({"token": token, "client_id": client_id, "client_secret": secret}, {}),
        ({"token": "x" * 300}, mine),
        ({"token": "garbage"}, mine),
        ({}, mine),
        ([("token", token), ("token", token)], mine),
    ]
    for data, headers in cases:
        served, view = paths.both("/introspect", data, headers)
        assert _shape(served) == _shape(view), data
        assert served.get_data() == view.get_data(), data


def _refresh_token(idp, client_id, secret):
    code = code_from(authorize(idp.test_client(), code_params(client_id)))
    answer = exchange(idp, client_id, secret, code)
    assert answer.status_code == 200, answer.json
    return answer.json["refresh_token"]


def test_refresh_below_flask_rotates_like_the_view(paths, idp):
    add_user(idp)
    client_id, secret = add_client(idp)
    on_postgresql = is_postgresql(idp.extensions["portico"].db.engine)
    auth = basic(client_id, secret)
    refresh_token = _refresh_token(idp, client_id, secret)
    paths.entered.clear()  # the code exchange is the view's
    fast_answer = paths.served.post("/token", headers=auth, data={
        "grant_type": "refresh_token", "refresh_token": refresh_token})
    # Only PostgreSQL rotates in one statement; elsewhere the view rotates.
    assert ("/token" in paths.entered) is not on_postgresql
    view_answer = paths.flask_only.post("/token", headers=auth, data={
        "grant_type": "refresh_token", "refresh_token": _refresh_token(idp, client_id, secret)})
    assert fast_answer.status_code == view_answer.status_code == 200, fast_answer.json
    assert set(fast_answer.json) == set(view_answer.json) == {
        "token_type", "access_token", "expires_in", "scope", "refresh_token"}
    assert_alike(paths, fast_answer, view_answer)
    # The successor works, and the used token is a replay that revokes the family.
    successor = fast_answer.json["refresh_token"]
    again = paths.served.post("/token", headers=auth, data={
        "grant_type": "refresh_token", "refresh_token": successor})
    assert again.status_code == 200
    replay = paths.served.post("/token", headers=auth, data={
        "grant_type": "refresh_token", "refresh_token": successor})
    assert replay.status_code == 400 and replay.json["error"] == "invalid_grant"
    newest = paths.served.post("/token", headers=auth, data={
        "grant_type": "refresh_token", "refresh_token": again.json["refresh_token"]})
    assert newest.json["error"] == "invalid_grant"


def test_a_public_client_refreshes_below_flask_without_a_secret(paths, idp):
    add_user(idp)
    public_id, _ = add_client(idp, token_endpoint_auth_method="none")
    code = code_from(authorize(idp.test_client(), code_params(public_id)))
    first = exchange(idp, public_id, None, code).json
    paths.entered.clear()  # the code exchange is the view's
    answer = paths.served.post("/token", data={
        "grant_type": "refresh_token", "refresh_token": first["refresh_token"],
        "client_id": public_id})
    assert answer.status_code == 200, answer.json
    assert paths.claims(answer.json["access_token"])["client_id"] == public_id
    on_postgresql = is_postgresql(idp.extensions["portico"].db.engine)
    assert ("/token" in paths.entered) is not on_postgresql


@pytest.mark.parametrize("step", ["rotate_in_one_statement", "issue_tokens"])
def test_a_failure_during_or_after_the_rotation_is_answered_not_replayed(
        paths, idp, monkeypatch, step):
    """Once the one statement may have used the token up, a replay through the view would
    look like a stolen token's reuse and revoke the family: the fast route answers."""
    add_user(idp)
    client_id, secret = add_client(idp)
    if not is_postgresql(idp.extensions["portico"].db.engine):
        pytest.skip("the one-statement rotation (and so this path) is PostgreSQL's only")
    refresh_token = _refresh_token(idp, client_id, secret)
    paths.entered.clear()  # the code exchange is the view's

    def failing(*args, **kwargs):
        if step == "issue_tokens":
            raise SigningKeyUnavailable("ES256")
        raise OperationalError("UPDATE ...", {}, Exception("server closed the connection"))

    monkeypatch.setattr(fast, step, failing)
    answer = paths.served.post("/token", headers=basic(client_id, secret), data={
        "grant_type": "refresh_token", "refresh_token": refresh_token})
    assert answer.status_code == 503
    assert answer.json["error"] == "temporarily_unavailable"
    assert answer.headers["Retry-After"] and answer.headers["Cache-Control"] == "no-store"
    assert paths.entered == []
    with idp.extensions["portico"].db.read() as session:
        revoked = session.scalars(select(RefreshToken.revoked_at)).all()
    assert revoked and all(value is None for value in revoked)


def _limited_identity(make_app, **settings):
    """identity with rate limits as given, its signing keys, and one machine client."""
    app = make_app("identity", key_activation_delay=0, **settings)
    ctx = app.extensions["portico"]
    with ctx.db.transaction() as session:
        keys.ensure_keys(session, Fernet(ctx.settings.key_encryption_key))
    client_id, secret = add_client(app, grant_types=["client_credentials"], scope="api.read",
                                   redirect_uris=[], allowed_audiences=["tracking"])
    return app, client_id, secret


def test_token_limits_count_each_request_once_whichever_path_answers(make_app):
    app, client_id, secret = _limited_identity(make_app, token_rate_limit_client="3 per minute")
    entered, _ = watch_flask(app)
    api = app.test_client()
    plain = {"grant_type": "client_credentials"}
    answers = [
        api.post("/token", data=plain, headers=basic(client_id, secret)),  # fast
        api.post("/token", data=plain, headers=basic(client_id, "wrong")),  # fast, declined
        api.post("/token", data={**plain, "resource": "tracking"},  # the view's
                 headers=basic(client_id, secret)),
        api.post("/token", data=plain, headers=basic(client_id, secret)),
        api.post("/token", data=plain, headers=basic(client_id, secret)),
    ]
    # The failed authentication is not the client's: it counts per address only.
    assert [a.status_code for a in answers] == [200, 401, 200, 200, 429]
    assert answers[4].json["error"] == "too_many_requests"
    assert int(answers[4].headers["Retry-After"]) > 0
    assert answers[4].headers["Cache-Control"] == "no-store"
    assert entered == ["/token", "/token", "/token"]
    # Another client has its own budget (the per-address limit is far away).
    other_id, other_secret = add_client(app, grant_types=["client_credentials"],
                                        scope="api.read", redirect_uris=[])
    assert api.post("/token", data=plain,
                    headers=basic(other_id, other_secret)).status_code == 200


def test_read_form_takes_only_plain_forms():
    assert fast.read_form(b"a=1&b=%20x") == {"a": "1", "b": " x"}
    assert fast.read_form(b"") == {}
    assert fast.read_form(b"a=1&a=2") is None
    assert fast.read_form(b"a=1&&b") is None
    assert fast.read_form("a=é".encode()) is None


def test_an_expired_access_token_is_inactive_on_both_paths(paths, idp, machine, monkeypatch):
    client_id, secret = machine
    token = paths.served.post("/token", data={"grant_type": "client_credentials"},
                              headers=basic(client_id, secret)).json["access_token"]
    later = time.time() + 3600
    monkeypatch.setattr(time, "time", lambda: later)
    served, view = paths.both("/introspect", {"token": token}, basic(client_id, secret))
    assert served.json == view.json == {"active": False}


def test_behind_a_trusted_proxy_the_token_limit_per_address_keys_by_the_forwarded_one(
        make_app):
    """The fast route sees the address ProxyFix has already put in REMOTE_ADDR."""
    app, client_id, secret = _limited_identity(make_app, token_rate_limit_ip="2 per minute",
                                               trusted_proxy_hops=1)
    entered, _ = watch_flask(app)
    api = app.test_client()

    def token(forwarded_for: str) -> int:
        return api.post("/token", data={"grant_type": "client_credentials"},
                        headers={**basic(client_id, secret), "X-Forwarded-For": forwarded_for},
                        environ_base={"REMOTE_ADDR": "10.0.0.5"}).status_code

    assert [token("198.51.100.7") for _ in range(3)] == [200, 200, 429]
    assert token("203.0.113.9") == 200  # another address behind the same ingress
    assert entered == ["/token"]  # only the refused one reached the view


def test_only_the_tokens_client_or_a_resource_server_in_its_aud_may_introspect_it(
        paths, idp, machine):
    """Issue 24: any client whose allowed audiences overlapped a token's could introspect it."""
    client_id, secret = machine  # its token's aud: ["permissions", "tracking"]
    overlapping = add_client(idp, grant_types=["client_credentials"], scope="api.read",
                             redirect_uris=[], allowed_audiences=["tracking"])
    resource_server = add_client(idp, client_id="tracking", grant_types=["client_credentials"],
                                 scope="api.read", redirect_uris=[])
    token = paths.served.post("/token", data={"grant_type": "client_credentials"},
                              headers=basic(client_id, secret)).json["access_token"]
    for (introspecting_id, introspecting_secret), active in [
            ((client_id, secret), True), (overlapping, False), (resource_server, True)]:
        served, view = paths.both("/introspect", {"token": token},
                                  basic(introspecting_id, introspecting_secret))
        assert served.json["active"] is view.json["active"] is active, introspecting_id
        if not active:
            assert served.json == view.json == {"active": False}

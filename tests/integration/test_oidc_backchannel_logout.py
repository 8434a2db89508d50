"""OpenID Connect Back-Channel Logout: a session's end queues a logout token for each
client that took part and registered a ``backchannel_logout_uri``; the identity worker's
sender POSTs it to a real HTTP server, retries with backoff and gives up in the end."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from prometheus_client import CollectorRegistry
from sqlalchemy import select, update

from services.common.events import utcnow
from services.devtools.ports import free_port
from services.identity import jobs
from services.identity.lifecycle.revocation import sign_out_everywhere
from services.identity.oidc import backchannel
from services.identity.oidc.backchannel import EVENT, MAX_ATTEMPTS, BackchannelSender
from services.identity.oidc.models import BackchannelLogout
from tests.integration.helpers.oidc import (
    add_client,
    add_user,
    authorize,
    code_from,
    code_params,
    exchange,
)
from tests.support import iamctl_worker


class RelyingParty:
    """A client's back-channel endpoint on loopback: records each POST's form and answers
    with the next of ``statuses`` (the last one again when they run out)."""

    def __init__(self) -> None:
        self.received: list[dict[str, list[str]]] = []
        self.statuses = [200]
        self.hold_first: threading.Event | None = None  # set: the first POST waits for it
        party = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                party.received.append(parse_qs(body))
                if party.hold_first is not None and len(party.received) == 1:
                    party.hold_first.wait(30)
                status = party.statuses.pop(0) if len(party.statuses) > 1 else party.statuses[0]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_port}/backchannel-logout"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        if self.hold_first is not None:
            self.hold_first.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def party():
    rp = RelyingParty()
    yield rp
    rp.close()


def _sender(app, metrics: CollectorRegistry | None = None) -> BackchannelSender:
    provider = app.extensions["portico.oidc"].provider
    return BackchannelSender(provider.db, provider.keyring, provider.settings.issuer,
                             metrics=metrics)


def _settled(metrics: CollectorRegistry) -> dict[str, float | None]:
    return {outcome: metrics.get_sample_value("portico_backchannel_logouts_total",
                                              {"outcome": outcome})
            for outcome in ("delivered", "retrying", "abandoned")}


def _rows(app) -> list[BackchannelLogout]:
    with app.extensions["portico"].db.read() as session:
        rows = list(session.scalars(select(BackchannelLogout).order_by(BackchannelLogout.id)))
        session.expunge_all()
        return rows


def _make_due(app) -> None:
    with app.extensions["portico"].db.transaction() as session:
        session.execute(update(BackchannelLogout).values(
            next_attempt_at=utcnow() - timedelta(seconds=1)))


def _signed_in(app, browser, client_id, secret) -> dict:
    code = code_from(authorize(browser, code_params(client_id)))
    answer = exchange(app, client_id, secret, code)
    assert answer.status_code == 200, answer.json
    return answer.json


def _logout(browser, id_token) -> None:
    answer = browser.get("/logout?" + urlencode({"id_token_hint": id_token}))
    assert answer.status_code == 200


def test_a_logout_sends_each_listening_client_a_verifiable_logout_token(idp, party):
    user_id = add_user(idp)
    listening, secret = add_client(idp, backchannel_logout_uri=party.uri)
    deaf, deaf_secret = add_client(idp)
    browser = idp.test_client()
    tokens = _signed_in(idp, browser, listening, secret)
    _signed_in(idp, browser, deaf, deaf_secret)
    _logout(browser, tokens["id_token"])

    [row] = _rows(idp)
    assert row.client_id == listening and row.delivered_at is None
    assert party.received == []  # queued by the request, not sent by it
    assert _sender(idp).deliver_due() == 1

    [form] = party.received
    [token] = form["logout_token"]
    published = _keys(idp)
    logout = jwt.decode(token, published)
    id_claims = jwt.decode(tokens["id_token"], published).claims
    assert logout.header["typ"] == "logout+jwt"
    claims = logout.claims
    assert claims["iss"] == idp.extensions["portico"].settings.issuer
    assert claims["aud"] == listening and claims["sub"] == user_id
    assert claims["sid"] == id_claims["sid"]
    assert claims["events"] == {EVENT: {}} and "nonce" not in claims
    assert 0 < claims["exp"] - claims["iat"] <= 120 and claims["jti"]
    [row] = _rows(idp)
    assert row.delivered_at is not None and row.attempts == 1 and row.last_error is None
    assert _sender(idp).deliver_due() == 0  # delivered once


def test_a_failing_client_is_retried_later_then_delivered(idp, party):
    add_user(idp)
    client_id, secret = add_client(idp, backchannel_logout_uri=party.uri)
    browser = idp.test_client()
    _logout(browser, _signed_in(idp, browser, client_id, secret)["id_token"])
    party.statuses = [503, 200]
    metrics = CollectorRegistry()
    sender = _sender(idp, metrics)
    assert sender.deliver_due() == 1
    [row] = _rows(idp)
    assert row.delivered_at is None and row.last_error == "answered 503"
    assert row.next_attempt_at > utcnow() + timedelta(seconds=5)  # backoff from 10 s
    assert sender.deliver_due() == 0  # not due yet
    _make_due(idp)
    assert sender.deliver_due() == 1
    [row] = _rows(idp)
    assert row.delivered_at is not None and row.attempts == 2
    assert len(party.received) == 2
    assert _settled(metrics) == {"delivered": 1.0, "retrying": 1.0, "abandoned": None}


def test_a_client_that_never_answers_is_given_up_after_the_last_attempt(idp, party):
    add_user(idp)
    silent = f"http://127.0.0.1:{free_port()}/nobody-listens"
    client_id, secret = add_client(idp, backchannel_logout_uri=silent)
    browser = idp.test_client()
    _logout(browser, _signed_in(idp, browser, client_id, secret)["id_token"])
    metrics = CollectorRegistry()
    sender = _sender(idp, metrics)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        _make_due(idp)
        assert sender.deliver_due() == 1
        [row] = _rows(idp)
        assert row.attempts == attempt and row.last_error == "no answer: ConnectionError"
        assert (row.abandoned_at is not None) is (attempt == MAX_ATTEMPTS)
    _make_due(idp)
    assert sender.deliver_due() == 0
    assert _settled(metrics) == {"delivered": None, "retrying": MAX_ATTEMPTS - 1.0,
                                 "abandoned": 1.0}


def test_a_claimed_row_is_leased_so_a_killed_sender_is_taken_over_later(idp, party):
    add_user(idp)
    client_id, secret = add_client(idp, backchannel_logout_uri=party.uri)
    browser = idp.test_client()
    _logout(browser, _signed_in(idp, browser, client_id, secret)["id_token"])
    first = _sender(idp)
    [claimed] = first.claim()  # and then the process dies before delivering
    second = _sender(idp)
    assert second.deliver_due() == 0
    [row] = _rows(idp)
    assert row.next_attempt_at > utcnow() + timedelta(seconds=50)  # the lease
    _make_due(idp)  # the lease has run out
    assert second.deliver_due() == 1
    assert _rows(idp)[0].delivered_at is not None and len(party.received) == 1


def test_signing_out_everywhere_queues_the_logouts_of_every_session(idp, party):
    user_id = add_user(idp)
    client_id, secret = add_client(idp, backchannel_logout_uri=party.uri)
    for _ in range(2):  # two browsers, two sessions
        _signed_in(idp, idp.test_client(), client_id, secret)
    ctx = idp.extensions["portico"]
    with ctx.db.transaction() as session:
        ended = sign_out_everywhere(session, ctx.redis, ctx.settings.redis_namespace, user_id)
    assert ended["sessions"] == 2
    rows = _rows(idp)
    assert len(rows) == 2 and len({row.sid for row in rows}) == 2
    assert _sender(idp).deliver_due() == 2 and len(party.received) == 2


def test_no_logout_is_queued_without_a_listening_client_or_a_session(idp):
    add_user(idp)
    client_id, secret = add_client(idp)
    browser = idp.test_client()
    tokens = _signed_in(idp, browser, client_id, secret)
    _logout(browser, tokens["id_token"])
    _logout(browser, tokens["id_token"])  # the session is gone already
    assert _rows(idp) == []


def test_a_client_that_dropped_its_uri_is_given_up_at_once(idp, party):
    add_user(idp)
    client_id, secret = add_client(idp, backchannel_logout_uri=party.uri)
    browser = idp.test_client()
    _logout(browser, _signed_in(idp, browser, client_id, secret)["id_token"])
    from services.identity.oidc.models import OAuthClient

    with idp.extensions["portico"].db.transaction() as session:
        session.execute(update(OAuthClient).values(backchannel_logout_uri=None))
    assert _sender(idp).deliver_due() == 1
    [row] = _rows(idp)
    assert row.abandoned_at is not None and party.received == []


def test_discovery_advertises_it_and_the_worker_runs_the_sender(idp):
    metadata = idp.test_client().get("/.well-known/openid-configuration").json
    assert metadata["backchannel_logout_supported"] is True
    assert metadata["backchannel_logout_session_supported"] is True
    settings = idp.extensions["portico"].settings
    assert [type(r) for r in jobs.runnables(settings, idp.extensions["portico"].db)] == \
        [backchannel.BackchannelSender]


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_a_worker_killed_mid_delivery_leaves_the_logout_to_the_next_one(idp, party, tmp_path):
    """A real ``iamctl worker identity`` is SIGKILLed while the client's server holds its
    POST unanswered; once the lease has run out (made so here), a second worker delivers."""
    add_user(idp)
    client_id, secret = add_client(idp, backchannel_logout_uri=party.uri)
    browser = idp.test_client()
    _logout(browser, _signed_in(idp, browser, client_id, secret)["id_token"])
    hold = threading.Event()
    party.hold_first = hold
    settings = idp.extensions["portico"].settings
    env = {**os.environ, "DATABASE_URL": settings.database_url,
           "REDIS_URL": settings.redis_url, "REDIS_NAMESPACE": settings.redis_namespace,
           "KEY_ENCRYPTION_KEY": settings.key_encryption_key,
           "OIDC_ISSUER": settings.issuer, "LOG_JSON": "false"}
    with iamctl_worker("identity", env, tmp_path / "doomed.log") as doomed:
        try:
            deadline = time.monotonic() + 30
            while not party.received:
                assert doomed.poll() is None, (tmp_path / "doomed.log").read_text()
                assert time.monotonic() < deadline, "the first worker sent nothing"
                time.sleep(0.05)
        finally:
            doomed.kill()
            doomed.wait(10)
            hold.set()
    [row] = _rows(idp)
    assert row.attempts == 1 and row.delivered_at is None  # sent, never answered
    _make_due(idp)  # the lease has run out
    with iamctl_worker("identity", env, tmp_path / "second.log") as second:
        try:
            deadline = time.monotonic() + 30
            while _rows(idp)[0].delivered_at is None:
                assert second.poll() is None, (tmp_path / "second.log").read_text()
                assert time.monotonic() < deadline, "the second worker did not deliver"
                time.sleep(0.05)
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(20) == 0
    assert len(party.received) == 2
    first, again = (jwt.decode(form["logout_token"][0], _keys(idp)).claims
                    for form in party.received)
    assert first["sid"] == again["sid"] and first["jti"] != again["jti"]


def _keys(app) -> KeySet:
    return KeySet.import_key_set(app.test_client().get("/jwks").json)


def test_iamctl_registers_a_backchannel_logout_uri(idp):
    from click.testing import CliRunner

    from services.cli import main

    settings = idp.extensions["portico"].settings
    env = {"DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
           "REDIS_NAMESPACE": settings.redis_namespace, "LOG_JSON": "false"}

    def create(uri: str):
        return CliRunner().invoke(main, [
            "clients", "create", "--name", "Portal", "--redirect-uri",
            "http://127.0.0.1:8000/callback", "--backchannel-logout-uri", uri], env=env)

    made = create("http://127.0.0.1:8000/backchannel-logout")
    assert made.exit_code == 0, made.output
    assert json.loads(made.output)["backchannel_logout_uri"] == \
        "http://127.0.0.1:8000/backchannel-logout"
    refused = create("http://rp.example.com/backchannel-logout")  # plain http off loopback
    assert refused.exit_code == 1 and "backchannel_logout_uri" in refused.output


def test_a_session_whose_user_is_gone_ends_with_a_logout_too(idp, party):
    from sqlalchemy import delete

    from services.identity.models import User

    user_id = add_user(idp)
    client_id, secret = add_client(idp, backchannel_logout_uri=party.uri)
    browser = idp.test_client()
    _signed_in(idp, browser, client_id, secret)
    with idp.extensions["portico"].db.transaction() as session:
        session.execute(delete(User).where(User.id == user_id))
    answer = browser.get("/authorize?" + urlencode(code_params(client_id)))
    assert answer.status_code == 400 and "Your session has ended" in answer.get_data(as_text=True)
    [row] = _rows(idp)
    assert row.client_id == client_id and row.user_id == user_id

"""What one browser login and its code exchange cost the database: each row read once,
the code claimed with its user in one statement (each statement is a round trip, and
the flow's CPU beyond its argon2 hash is mostly these), with every refusal kept."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from services.common.db import is_postgresql
from services.common.events import utcnow
from services.identity.lifecycle.models import UserSecurity
from services.identity.models import User, UserStatus
from services.identity.oidc.models import AuthorizationCode
from tests.integration.helpers.oidc import (
    add_client,
    add_user,
    authorize,
    basic,
    code_from,
    code_params,
    exchange,
)
from tests.support import statements


def _reads_of(table: str, seen: list[str]) -> int:
    return sum(1 for sql in seen if sql.lstrip().upper().startswith("SELECT")
               and f"FROM {table}" in sql)


def test_a_login_reads_the_security_row_once_and_checks_the_nonce_once(idp):
    add_user(idp)
    client_id, _ = add_client(idp)
    # A first login creates the security row; the second finds it.
    code_from(authorize(idp.test_client(), code_params(client_id)))
    seen = statements(idp)
    code_from(authorize(idp.test_client(), code_params(client_id)))
    assert _reads_of(UserSecurity.__tablename__, seen) == 1
    nonce_checks = [sql for sql in seen if f"FROM {AuthorizationCode.__tablename__}" in sql
                    and "nonce" in sql]
    assert len(nonce_checks) == 1


def test_a_nonce_already_used_is_still_refused_as_a_replay(idp):
    add_user(idp)
    client_id, _ = add_client(idp)
    browser = idp.test_client()
    code_from(authorize(browser, code_params(client_id, nonce="once-only")))
    again = authorize(browser, code_params(client_id, nonce="once-only"))
    assert again.status_code == 302
    assert "error=invalid_request" in again.headers["Location"]


def _fresh_code(app, client_id) -> str:
    return code_from(authorize(app.test_client(), code_params(client_id)))


def test_a_code_exchange_claims_the_code_and_its_user_in_one_statement(idp):
    add_user(idp)
    client_id, secret = add_client(idp)
    code = _fresh_code(idp, client_id)
    seen = statements(idp)  # SQLAlchemy's statements: the one-statement claim is below them
    answer = exchange(idp, client_id, secret, code)
    assert answer.status_code == 200 and "id_token" in answer.json
    if is_postgresql(idp.extensions["portico"].db.engine):
        assert _reads_of(AuthorizationCode.__tablename__, seen) == 0
        assert _reads_of(User.__tablename__, seen) == 0
    replay = exchange(idp, client_id, secret, code)
    assert replay.status_code == 400 and replay.json["error"] == "invalid_grant"
    # The replay revoked what the code had issued.
    api = idp.test_client()
    seen_token = api.post("/introspect", data={"token": answer.json["access_token"]},
                          headers=basic(client_id, secret))
    assert seen_token.json == {"active": False}


def test_an_expired_code_is_refused_and_used_up(idp):
    add_user(idp)
    client_id, secret = add_client(idp)
    code = _fresh_code(idp, client_id)
    with idp.extensions["portico"].db.transaction() as session:
        session.execute(update(AuthorizationCode).values(
            expires_at=utcnow() - timedelta(seconds=1)))
    refused = exchange(idp, client_id, secret, code)
    assert refused.status_code == 400 and refused.json["error"] == "invalid_grant"
    with idp.extensions["portico"].db.read() as session:
        assert session.scalar(select(AuthorizationCode.used_at)) is not None


def test_a_code_of_a_user_disabled_since_is_refused(idp):
    user_id = add_user(idp)
    client_id, secret = add_client(idp)
    code = _fresh_code(idp, client_id)
    with idp.extensions["portico"].db.transaction() as session:
        session.get(User, user_id).status = UserStatus.DISABLED
    refused = exchange(idp, client_id, secret, code)
    assert refused.status_code == 400 and refused.json["error"] == "invalid_grant"
    assert "access_token" not in refused.json


def test_another_clients_code_is_refused_and_stays_usable_by_its_own(idp):
    add_user(idp)
    client_id, secret = add_client(idp)
    other_id, other_secret = add_client(idp)
    code = _fresh_code(idp, client_id)
    stolen = exchange(idp, other_id, other_secret, code)
    assert stolen.status_code == 400 and stolen.json["error"] == "invalid_grant"
    assert exchange(idp, client_id, secret, code).status_code == 200

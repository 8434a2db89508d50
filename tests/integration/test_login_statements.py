"""What one browser login costs the database: each row is read once (a login is ~15%
above its argon2 hash in CPU, and each statement is a round trip of its own)."""

from __future__ import annotations

from services.identity.lifecycle.models import UserSecurity
from services.identity.oidc.models import AuthorizationCode
from tests.integration.test_oidc_client_cache import statements
from tests.integration.test_oidc_flow import (
    add_client,
    add_user,
    authorize,
    code_from,
    code_params,
    idp,
)

FIXTURES = (idp,)


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

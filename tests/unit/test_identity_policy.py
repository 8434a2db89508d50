"""Password policy, hashing and client registration validation."""

from __future__ import annotations

import pytest
from marshmallow import ValidationError

from services.identity.clients import secret_digest, secret_matches
from services.identity.passwords import (
    HASHER,
    check_password_policy,
    hash_password,
    verify_password,
)
from services.identity.schemas import ClientSchema, validate_redirect_uri


def test_password_policy():
    assert check_password_policy("a-long-passphrase-1", "bob", "bob@example.com") == []
    assert check_password_policy("short", "bob", "bob@example.com")
    assert check_password_policy("xx-alice-rules-xx", "Alice", "a@example.com")
    assert check_password_policy("my-maildrop-is-long", "bob", "maildrop@example.com")


def test_argon2id_with_owasp_parameters():
    digest = hash_password("a-long-passphrase-1")
    assert digest.startswith("$argon2id$")
    assert HASHER.memory_cost >= 19 * 1024 and HASHER.time_cost >= 2
    assert verify_password(digest, "a-long-passphrase-1")
    assert not verify_password(digest, "wrong")
    assert not verify_password(None, "anything")


def test_client_secret_digest_is_keyed():
    assert secret_digest("k1", "s") != secret_digest("k2", "s")
    assert secret_matches("k1", secret_digest("k1", "s"), "s")
    assert not secret_matches("k1", secret_digest("k1", "s"), "t")
    assert not secret_matches("k1", None, "s")


@pytest.mark.parametrize("uri", ["https://app.example.com/cb", "http://127.0.0.1:8000/cb",
                                 "http://localhost/cb", "http://[::1]:9/cb"])
def test_redirect_uri_accepted(uri):
    validate_redirect_uri(uri)


@pytest.mark.parametrize("uri", ["http://app.example.com/cb", "/cb", "https://a.example/cb#x",
                                 "javascript:alert(1)", "ftp://127.0.0.1/x",
                                 "https://portal.example.com@evil.example/cb",
                                 "https://user:pw@portal.example.com/cb"])
def test_redirect_uri_refused(uri):
    with pytest.raises(ValidationError):
        validate_redirect_uri(uri)


def test_client_schema_rules():
    with pytest.raises(ValidationError) as error:
        ClientSchema().load({"name": "x", "grant_types": ["client_credentials"],
                             "token_endpoint_auth_method": "none"})
    assert "grant_types" in error.value.messages
    with pytest.raises(ValidationError) as error:
        ClientSchema().load({"name": "x", "grant_types": ["authorization_code"]})
    assert "redirect_uris" in error.value.messages

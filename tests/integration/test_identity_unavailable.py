"""Identity without a signing key or its database answers 503 temporarily_unavailable,
never a 500."""

from __future__ import annotations

from cryptography.fernet import Fernet

from services.common.db import Database
from services.identity.oidc import keys
from tests.integration.helpers.oidc import add_client
from tests.support import free_port


def _machine_client(app) -> tuple[str, str]:
    return add_client(app, name="svc", redirect_uris=[], post_logout_redirect_uris=[],
                      grant_types=["client_credentials"], scope="api.read",
                      allowed_audiences=["tracking"], first_party=False,
                      token_endpoint_auth_method="client_secret_post")


def test_token_without_signing_keys_is_503_temporarily_unavailable(make_app):
    app = make_app("identity")
    client_id, secret = _machine_client(app)
    response = app.test_client().post("/token", data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
        "resource": "tracking"})
    assert response.status_code == 503
    assert response.json["error"] == "temporarily_unavailable"
    assert response.headers["Cache-Control"] == "no-store"


def test_token_with_the_database_unreachable_is_503_and_keys_already_loaded_still_sign(
        make_app):
    app = make_app("identity", key_activation_delay=0)
    ctx = app.extensions["portico"]
    provider = app.extensions["portico.oidc"].provider
    with ctx.db.transaction() as session:
        keys.ensure_keys(session, Fernet(ctx.settings.key_encryption_key))
    known_id, known_secret = _machine_client(app)
    other_id, other_secret = _machine_client(app)
    api = app.test_client()

    def token(client_id, secret):
        return api.post("/token", data={"grant_type": "client_credentials",
                                        "client_id": client_id, "client_secret": secret})

    assert token(known_id, known_secret).status_code == 200  # client and keys now loaded
    unreachable = Database(f"postgresql://portico@127.0.0.1:{free_port()}/portico")
    provider.db = provider.keyring.db = unreachable
    provider.keyring.ttl = 0  # every request tries to reload the keys
    try:
        assert token(known_id, known_secret).status_code == 200
        refused = token(other_id, other_secret)  # its client must be read from the database
        assert refused.status_code == 503
        assert refused.json["error"] == "temporarily_unavailable"
        # 5 s, or later when the rate limiter's window resets later (it sets the header).
        assert int(refused.headers["Retry-After"]) >= 5
        assert refused.headers["Cache-Control"] == "no-store"
    finally:
        unreachable.dispose()

"""Identity without a signing key answers 503 temporarily_unavailable, never a 500."""

from __future__ import annotations

from services.identity import clients
from services.identity.schemas import ClientSchema


def test_token_without_signing_keys_is_503_temporarily_unavailable(make_app):
    app = make_app("identity")
    ctx = app.extensions["portico"]
    spec = {"name": "svc", "redirect_uris": [], "grant_types": ["client_credentials"],
            "scope": "api.read", "allowed_audiences": ["tracking"],
            "token_endpoint_auth_method": "client_secret_post"}
    with ctx.db.transaction() as session:
        client, secret = clients.create_client(session, ctx.settings.client_secret_pepper,
                                               ClientSchema().load(spec))
        client_id = client.client_id
    response = app.test_client().post("/token", data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
        "resource": "tracking"})
    assert response.status_code == 503
    assert response.json["error"] == "temporarily_unavailable"
    assert response.headers["Cache-Control"] == "no-store"

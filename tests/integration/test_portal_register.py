"""Registering the portal's OIDC client once, through identity's own use case."""

from __future__ import annotations

import json
import os
import stat

from examples.portal.register import ensure_registered
from services.identity.oidc.models import OAuthClient


def test_the_portal_is_registered_once_and_its_secret_kept_in_a_private_file(make_app, tmp_path):
    identity = make_app("identity")
    db = identity.extensions["portico"].db
    client_file = tmp_path / "var" / "portal-client.json"
    env = {"DATABASE_URL": str(db.engine.url.render_as_string(hide_password=False)),
           "PORTAL_CLIENT_FILE": str(client_file), "PORT": "8000"}

    created = ensure_registered(env)
    assert created is not None and created["client_secret"]
    saved = json.loads(client_file.read_text())
    assert saved["client_id"] == created["client_id"]
    assert stat.S_IMODE(os.stat(client_file).st_mode) == 0o600
    with db.read() as session:
        client = session.get(OAuthClient, created["client_id"])
        assert client.redirect_uris == ["http://127.0.0.1:8000/callback"]
        assert client.post_logout_redirect_uris == ["http://127.0.0.1:8000/"]
        assert set(client.allowed_audiences) == {"permissions", "tracking"}
        assert client.first_party and not client.public
        assert "tracking.read" in client.scope.split()

    assert ensure_registered(env) is None  # the file exists: nothing to do
    with db.read() as session:
        assert session.query(OAuthClient).count() == 1

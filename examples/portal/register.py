"""Register the portal as an OIDC client of Portico, once.

``python -m examples.portal.register`` (``make run`` calls :func:`ensure_registered` on
start): when the client file (``PORTAL_CLIENT_FILE``, default ``var/portal-client.json``)
is absent, the client is created through identity's own use case (the same one
``iamctl clients create`` runs) and its JSON, secret included, is written to the file
(mode 0600). An existing file is left alone. The secret is never printed.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from services.common.config import load_or_exit
from services.common.db import Database
from services.identity import clients as client_cases
from services.identity.schemas import ClientSchema, client_json
from services.identity.settings import IdentitySettings

from .settings import PortalSettings

AUDIENCES = ["permissions", "tracking"]


def client_spec(settings: PortalSettings) -> dict[str, Any]:
    """What ``iamctl clients create --name portal ... --first-party`` would register, plus the
    audiences the portal's access tokens must carry (one token serves both APIs)."""
    return {"name": "portal", "redirect_uris": [settings.redirect_uri],
            "post_logout_redirect_uris": [settings.post_logout_redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"], "scope": settings.scope,
            "token_endpoint_auth_method": "client_secret_basic", "first_party": True,
            "allowed_audiences": AUDIENCES}


def ensure_registered(environ: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """Register the portal unless its client file exists. Returns the new client (with its
    secret) or None when there was nothing to do."""
    settings = load_or_exit(PortalSettings, environ)
    return register_once(Path(settings.client_file), client_spec(settings), environ)


def register_once(path: Path, spec: dict[str, Any],
                  environ: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """Create the client ``spec`` in identity's database and write its JSON (secret
    included, mode 0600) to ``path``, unless ``path`` exists (then None). Shared with the
    console's registration."""
    if path.exists():
        return None
    identity = load_or_exit(IdentitySettings, environ)
    db = Database(identity.database_url)
    try:
        with db.transaction() as session:
            client, secret = client_cases.create_client(
                session, identity.client_secret_pepper, ClientSchema().load(spec))
            body = client_json(client, secret)
    finally:
        db.dispose()
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(body, handle, indent=2, default=str)
    return body


def main() -> int:
    created = ensure_registered()
    settings = load_or_exit(PortalSettings)
    if created is None:
        print(json.dumps({"registered": False, "client_file": settings.client_file}))
    else:
        print(json.dumps({"registered": True, "client_id": created["client_id"],
                          "client_file": settings.client_file}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

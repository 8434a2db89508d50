"""Register the console as an OIDC client of Portico, once (``make run`` calls
:func:`ensure_registered`; ``python -m console.register`` by hand). Like the portal's: the
client file (``CONSOLE_CLIENT_FILE``) is written once, mode 0600; the secret is never printed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from examples.portal.register import register_once
from services.common.config import load_or_exit

from .settings import ConsoleSettings

# The console calls identity's admin API (and later permissions and tracking) as the person.
AUDIENCES = ["identity", "permissions", "tracking"]


def client_spec(settings: ConsoleSettings) -> dict[str, Any]:
    """A first-party confidential client (code + PKCE, refresh) whose access tokens carry the
    audiences of the APIs the console calls for the signed-in person."""
    return {"name": "console", "redirect_uris": [settings.redirect_uri],
            "post_logout_redirect_uris": [settings.post_logout_redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"], "scope": settings.scope,
            "token_endpoint_auth_method": "client_secret_basic", "first_party": True,
            "allowed_audiences": AUDIENCES}


def ensure_registered(environ: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """Register the console unless its client file exists; the new client or None."""
    settings = load_or_exit(ConsoleSettings, environ)
    return register_once(Path(settings.client_file), client_spec(settings), environ)


def main() -> int:
    created = ensure_registered()
    settings = load_or_exit(ConsoleSettings)
    print(json.dumps({"registered": created is not None,
                      **({"client_id": created["client_id"]} if created else {}),
                      "client_file": settings.client_file}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

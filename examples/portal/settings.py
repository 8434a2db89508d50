"""Settings of the sample portal, read from the environment like every Portico process."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path

from services.common.config import parse_positive_int, setting

DEV_SECRET_KEY = "portico-portal-dev-secret-key"  # noqa: S105 (dev default, warned at start)
DEFAULT_SCOPE = "openid profile email offline_access entitlements tracking.read"


def _issuer(env: Mapping[str, str]) -> str:
    return env.get("OIDC_ISSUER") or "http://127.0.0.1:8001"


_issuer.__doc__ = "$OIDC_ISSUER, else http://127.0.0.1:8001"


def _client_file(env: Mapping[str, str]) -> str:
    return str(Path(env.get("PORTICO_VAR_DIR") or "var") / "portal-client.json")


_client_file.__doc__ = "$PORTICO_VAR_DIR/portal-client.json"


def _base_url(env: Mapping[str, str]) -> str:
    return f"http://127.0.0.1:{env.get('PORT') or 8000}"


_base_url.__doc__ = "http://127.0.0.1:$PORT"


def _redis_prefix(env: Mapping[str, str]) -> str:
    return f"{env.get('REDIS_NAMESPACE') or 'portico'}:portal"


_redis_prefix.__doc__ = "$REDIS_NAMESPACE:portal"


class RelyingParty:
    """What every internal app's settings derive from ``base_url`` and its client
    credentials (the portal's and the help-desk console's)."""

    base_url: str
    client_id: str
    client_secret: str
    client_file: str

    @property
    def redirect_uri(self) -> str:
        return self.base_url.rstrip("/") + "/callback"

    @property
    def post_logout_redirect_uri(self) -> str:
        return self.base_url.rstrip("/") + "/"

    def credentials(self) -> tuple[str, str] | None:
        """(client_id, client_secret) from the environment, else the client file, else None."""
        if self.client_id:
            return self.client_id, self.client_secret
        if not os.path.exists(self.client_file):
            return None
        with open(self.client_file, encoding="utf-8") as handle:
            registered = json.load(handle)
        return registered["client_id"], registered.get("client_secret") or ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class PortalSettings(RelyingParty):
    issuer: str = setting("PORTAL_ISSUER", _issuer, help="issuer URL of Portico's identity service")
    client_id: str = setting("PORTAL_CLIENT_ID", "",
                             help="the portal's OIDC client id (else read from PORTAL_CLIENT_FILE)")
    client_secret: str = setting("PORTAL_CLIENT_SECRET", "",
                                 help="the portal's client secret (else read from PORTAL_CLIENT_FILE)")
    client_file: str = setting("PORTAL_CLIENT_FILE", _client_file,
                               help="JSON printed by `iamctl clients create` for the portal")
    permissions_url: str = setting("PERMISSIONS_URL", "http://127.0.0.1:8002",
                                   help="base URL of the permissions service")
    tracking_url: str = setting("TRACKING_URL", "http://127.0.0.1:8003",
                                help="base URL of the tracking service")
    secret_key: str = setting("PORTAL_SECRET_KEY", DEV_SECRET_KEY,
                              help="signs the portal's session cookie (a dev value by default)")
    port: int = setting("PORT", 8000, parse_positive_int, help="port of the portal")
    base_url: str = setting("PORTAL_BASE_URL", _base_url,
                            help="the portal's public URL (redirect URIs are derived from it)")
    scope: str = setting("PORTAL_SCOPE", DEFAULT_SCOPE, help="scopes the portal asks for")
    redis_url: str = setting("REDIS_URL", "",
                             help="where server-side sessions live (empty: in this process)")
    redis_prefix: str = setting("PORTAL_REDIS_PREFIX", _redis_prefix,
                                help="prefix of the portal's Redis keys")
    session_ttl: int = setting("PORTAL_SESSION_TTL", 8 * 3600, parse_positive_int,
                               help="seconds a portal session lives")
    http_timeout: float = setting("PORTAL_HTTP_TIMEOUT", 5.0, float,
                                  help="seconds to wait for a Portico API")
    # The layout shared with identity's pages (issue 29).
    brand_name: str = setting("BRAND_NAME", "Portico",
                              help="the program's name in the header, as on identity's pages")
    helpdesk_phone: str = setting("HELPDESK_PHONE", "+1 202 555 0100",
                                  help="help-desk phone in the footer")
    helpdesk_hours: str = setting("HELPDESK_HOURS", "Monday to Friday, 9:00 to 18:00",
                                  help="help-desk hours in English")
    helpdesk_hours_es: str = setting("HELPDESK_HOURS_ES", "de lunes a viernes, de 9:00 a 18:00",
                                     help="help-desk hours in Spanish")

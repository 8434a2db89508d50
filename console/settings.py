"""Settings of the console, read from the environment like every Portico process."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from examples.portal.settings import RelyingParty, _issuer
from services.common.config import parse_positive_int, setting

DEV_SECRET_KEY = "portico-console-dev-secret-key"  # noqa: S105 (dev default, warned at start)
# No audience scope is needed: the client's allowed audiences put identity in the token.
DEFAULT_SCOPE = "openid profile email offline_access"


def _client_file(env: Mapping[str, str]) -> str:
    return str(Path(env.get("PORTICO_VAR_DIR") or "var") / "console-client.json")


_client_file.__doc__ = "$PORTICO_VAR_DIR/console-client.json"


def _base_url(env: Mapping[str, str]) -> str:
    return f"http://127.0.0.1:{env.get('PORT') or 8005}"


_base_url.__doc__ = "http://127.0.0.1:$PORT"


def _redis_prefix(env: Mapping[str, str]) -> str:
    return f"{env.get('REDIS_NAMESPACE') or 'portico'}:console"


_redis_prefix.__doc__ = "$REDIS_NAMESPACE:console"


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConsoleSettings(RelyingParty):
    issuer: str = setting("CONSOLE_ISSUER", _issuer, help="issuer URL of Portico's identity service")
    identity_url: str = setting("CONSOLE_IDENTITY_URL", _issuer,
                                help="base URL of identity's admin API (the issuer by default)")
    permissions_url: str = setting("PERMISSIONS_URL", "http://127.0.0.1:8002",
                                   help="base URL of the permissions service (asked which "
                                        "actions to show)")
    client_id: str = setting("CONSOLE_CLIENT_ID", "",
                             help="the console's OIDC client id (else read from CONSOLE_CLIENT_FILE)")
    client_secret: str = setting("CONSOLE_CLIENT_SECRET", "",
                                 help="the console's client secret (else from CONSOLE_CLIENT_FILE)")
    client_file: str = setting("CONSOLE_CLIENT_FILE", _client_file,
                               help="JSON of the console's registered OIDC client")
    secret_key: str = setting("CONSOLE_SECRET_KEY", DEV_SECRET_KEY,
                              help="signs the console's session cookie (a dev value by default)")
    port: int = setting("PORT", 8005, parse_positive_int, help="port of the console")
    base_url: str = setting("CONSOLE_BASE_URL", _base_url,
                            help="the console's public URL (redirect URIs are derived from it)")
    scope: str = setting("CONSOLE_SCOPE", DEFAULT_SCOPE, help="scopes the console asks for")
    redis_url: str = setting("REDIS_URL", "",
                             help="where server-side sessions live (empty: in this process)")
    redis_prefix: str = setting("CONSOLE_REDIS_PREFIX", _redis_prefix,
                                help="prefix of the console's Redis keys")
    session_ttl: int = setting("CONSOLE_SESSION_TTL", 8 * 3600, parse_positive_int,
                               help="seconds a console session lives")
    http_timeout: float = setting("CONSOLE_HTTP_TIMEOUT", 5.0, float,
                                  help="seconds to wait for a Portico API")
    inactivity_days: int = setting("INACTIVITY_DAYS", 120, parse_positive_int,
                                   help="identity's inactivity period, for 'days until inactive'")
    brand_name: str = setting("BRAND_NAME", "Portico", help="the program's name in the header")

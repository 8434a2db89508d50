"""Platform powers and company-wide visibility, as every service asks permissions for them.

Two kinds of power (DESIGN.md §6). Company entitlements act inside one company and come
from that company's principal administrator. Platform powers (help desk, platform
administration, audit) act across companies; they are never in a company's catalog,
never requestable, and only a platform administrator grants them. A service never
decides either from a token's ``entitlements`` claim: it asks permissions, which answers
from its current data, so a revoked power is refused on the next request.

A client_credentials token (no user: ``sub == client_id``) is different: what it may do
is the scopes identity's operator registered for that client, and :func:`is_client_token`
tells a guard to look at its scopes instead of asking permissions.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import requests
from flask import Flask, current_app

from .auth import authenticate, token_scopes
from .errors import Problem
from .http import ClientCredentials, ServiceClient, TokenSource

log = logging.getLogger("portico.powers")

# Actions of permissions' check API that name a platform power (no resource).
HELPDESK = "platform.helpdesk"
HELPDESK_SUPERVISOR = "platform.helpdesk_supervisor"
PLATFORM_ADMIN = "platform.admin"
AUDIT = "platform.audit"
PLATFORM_POWERS = (HELPDESK, HELPDESK_SUPERVISOR, PLATFORM_ADMIN, AUDIT)
PLATFORM_PREFIX = "platform."

# The platform roles a platform administrator grants, and the powers each carries.
PLATFORM_ROLES: dict[str, tuple[str, ...]] = {
    "helpdesk_agent": (HELPDESK,),
    "helpdesk_supervisor": (HELPDESK, HELPDESK_SUPERVISOR),
    "platform_admin": (PLATFORM_ADMIN,),
    "auditor": (AUDIT,),
}

# The company entitlement that means "sees the whole company's transactions"; only the
# administrator role carries it (``transactions.track`` is "follow my own requests").
COMPANY_TRANSACTIONS = "transactions.track_company"


def is_client_token(claims: dict[str, Any]) -> bool:
    """A client_credentials token: it speaks for a client, not for a person."""
    sub = claims.get("sub")
    return bool(sub) and sub == claims.get("client_id")


class PowersUnavailable(Exception):
    """Permissions could not answer; the caller refuses (fails closed)."""


Check = tuple[str, dict[str, Any] | None]  # (action, resource)


class PermissionsChecks:
    """Asks permissions' ``POST /v1/check/batch`` about one subject, with a service token
    (scope ``permissions.check``, audience ``permissions``).

    Nothing is cached here: each privileged request asks, so a revoked power or a
    changed principal is refused at once. Only privileged paths ask (a user reading
    their own transaction does not), and permissions answers from its own
    version-checked cache.
    """

    def __init__(self, base_url: str, credentials: TokenSource | None, *,
                 timeout: float = 2.0) -> None:
        self.credentials = credentials
        self.client = ServiceClient(base_url, credentials, timeout=timeout, retries=1)

    def allowed(self, subject: str, checks: Sequence[Check]) -> list[bool]:
        """Whether ``subject`` may do each ``(action, resource)``; raises
        :class:`PowersUnavailable` when permissions cannot say."""
        if self.credentials is None:
            raise PowersUnavailable("no service credentials for permissions")
        body = {"checks": [{"subject": subject, "action": action,
                            **({"resource": resource} if resource else {})}
                           for action, resource in checks]}
        try:
            response = self.client.request("POST", "/v1/check/batch", json=body)
            response.raise_for_status()
            results = response.json()["results"]
            return [bool(r["allowed"]) for r in results][:len(checks)]
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            log.warning("permissions check unavailable", extra={"error": type(exc).__name__})
            raise PowersUnavailable(type(exc).__name__) from None

    def has(self, subject: str, action: str, resource: dict[str, Any] | None = None) -> bool:
        return self.allowed(subject, [(action, resource)])[0]


class MintedToken:
    """A :class:`TokenSource` for a service that signs its own tokens (identity)."""

    def __init__(self, mint: Callable[[], str]) -> None:
        self._mint = mint

    def token(self) -> str:
        return self._mint()

    def invalidate(self) -> None:
        return None


# -- Flask glue ------------------------------------------------------------------------

EXTENSION = "portico.powers"
F = TypeVar("F", bound=Callable[..., Any])


def checks_from_settings(settings: Any) -> PermissionsChecks:
    """A :class:`PermissionsChecks` from ``services.common.config.AsksPermissionsSettings``."""
    credentials = None
    if settings.service_client_id:
        credentials = ClientCredentials(settings.token_url, settings.service_client_id,
                                        settings.service_client_secret, "permissions",
                                        "permissions.check")
    else:
        log.warning("SERVICE_CLIENT_ID is not set: platform powers and company-wide "
                    "views will be refused")
    return PermissionsChecks(settings.permissions_url, credentials)


def init_powers(app: Flask, checks: PermissionsChecks) -> None:
    app.extensions[EXTENSION] = checks


def ask(subject: str, checks: Sequence[Check]) -> list[bool]:
    """:meth:`PermissionsChecks.allowed` for the app of the request; 503 when permissions
    cannot answer (a power is never assumed)."""
    try:
        return current_app.extensions[EXTENSION].allowed(subject, checks)
    except PowersUnavailable:
        raise Problem(503, "permissions-unavailable",
                      "Who may do this could not be asked of the permissions service; "
                      "try again shortly.", headers={"Retry-After": "5"}) from None


def holds_power(claims: dict[str, Any], *, power: str, scope: str) -> bool:
    """A client token holds ``power`` through ``scope``; a person through permissions."""
    if is_client_token(claims):
        return scope in token_scopes(claims)
    sub = claims.get("sub")
    return bool(sub) and ask(str(sub), [(power, None)])[0]


def require_power(power: str, *, scope: str) -> Callable[[F], F]:
    """A view for people holding the platform ``power`` (asked of permissions) or client
    tokens holding ``scope``; anyone else gets 403."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not holds_power(authenticate(), power=power, scope=scope):
                raise Problem(403, "insufficient-scope",
                              f"This needs the platform power {power} (a person) or the "
                              f"scope {scope} (a client).",
                              headers={"WWW-Authenticate": f'Bearer realm="portico", '
                                       f'error="insufficient_scope", scope="{scope}"'})
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate

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

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import requests

from .http import ServiceClient

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


class TokenSource(Protocol):
    def token(self) -> str: ...

    def invalidate(self) -> None: ...


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

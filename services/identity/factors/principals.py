"""Who a company's principal program administrator is, asked of permissions (which owns
administrators) on each request, never read from a token's claim.

Identity presents the service token it mints for permissions (scope
``PERMISSIONS_SCOPE``, by default ``permissions.read``, which lets a trusted service read
a company's administrators) to ``GET /admin/v1/companies/<id>``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import quote

import requests

from services.common.http import ServiceClient
from services.common.powers import MintedToken

log = logging.getLogger("portico.identity.principals")


class PrincipalsUnavailable(Exception):
    """Permissions could not say; the caller refuses (fails closed)."""


class Principals:
    def __init__(self, base_url: str, mint: Callable[[], str], *, timeout: float) -> None:
        self.client = ServiceClient(base_url, MintedToken(mint), timeout=timeout, retries=1)

    def of(self, company_id: str) -> str | None:
        """The principal's user id, or None (no such company in permissions, or none
        designated yet); raises :class:`PrincipalsUnavailable`."""
        try:
            response = self.client.request(
                "GET", f"/admin/v1/companies/{quote(company_id, safe='')}",
                headers={"Accept": "application/json"})
            if response.status_code == 404:
                return None
            response.raise_for_status()
            principal = response.json()["principal_user_id"]
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            log.warning("permissions could not name the principal",
                        extra={"error": type(exc).__name__})
            raise PrincipalsUnavailable(type(exc).__name__) from None
        return principal if isinstance(principal, str) else None

"""Portico's public APIs as the portal calls them: always with the signed-in user's access
token, never with a privileged service token."""

from __future__ import annotations

from typing import Any

import requests

STEP_UP_REQUIRED = "step_up_required"


class ApiError(Exception):
    """A Portico API refused or failed. ``message`` is safe to show to the user; ``acr``:
    the level to reach when the refusal asks for a step-up (:attr:`step_up`)."""

    def __init__(self, message: str, status: int | None = None,
                 errors: dict[str, list[str]] | None = None, reason: str | None = None,
                 acr: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.errors = errors or {}
        self.reason = reason
        self.acr = acr

    @property
    def step_up(self) -> bool:
        return self.reason == STEP_UP_REQUIRED and bool(self.acr)


class Portico:
    """Permissions and tracking, called as one user."""

    def __init__(self, settings, access_token: str, language: str | None = None) -> None:
        self.permissions = settings.permissions_url.rstrip("/")
        self.tracking = settings.tracking_url.rstrip("/")
        self.timeout = settings.http_timeout
        self.headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
        if language:
            self.headers["Accept-Language"] = language

    def _call(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = requests.request(method, url, headers=self.headers, timeout=self.timeout,
                                        **kwargs)
        except requests.RequestException:
            raise ApiError("The service is not answering; try again in a moment.") from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 400:
            body = body if isinstance(body, dict) else {}
            message = body.get("detail") or body.get("title") or f"HTTP {response.status_code}"
            errors = body.get("errors") if isinstance(body.get("errors"), dict) else {}
            raise ApiError(str(message), response.status_code, errors,
                           reason=body.get("reason"), acr=body.get("acr"))
        return body if isinstance(body, dict) else {"items": body}

    # permissions -------------------------------------------------------------------
    def home(self, user_id: str) -> list[dict[str, Any]]:
        return self._call("GET", f"{self.permissions}/v1/users/{user_id}/home").get("sections", [])

    def catalog(self) -> list[dict[str, Any]]:
        return self._call("GET", f"{self.permissions}/v1/entitlements").get("items", [])

    def request_access(self, entitlements: list[str], justification: str) -> dict[str, Any]:
        return self._call("POST", f"{self.permissions}/v1/access-requests",
                          json={"entitlements": entitlements, "justification": justification})

    def access_requests(self, view: str) -> list[dict[str, Any]]:
        return self._call("GET", f"{self.permissions}/v1/access-requests",
                          params={"view": view}).get("items", [])

    def decide(self, request_id: str, decision: str, comment: str | None) -> dict[str, Any]:
        return self._call("POST",
                          f"{self.permissions}/v1/access-requests/{request_id}/{decision}",
                          json={"comment": comment or None})

    def check(self, subject: str, action: str, resource: dict[str, str]) -> dict[str, Any]:
        """``{allowed, reason[, acr]}``: asked with the user's own token, so permissions
        judges the level of *this* sign-in (its ``acr``)."""
        return self._call("POST", f"{self.permissions}/v1/check",
                          json={"subject": subject, "action": action, "resource": resource})

    def company(self, company_id: str) -> dict[str, Any] | None:
        """The company as its administrators see it; None for anyone else (404)."""
        try:
            return self._call("GET", f"{self.permissions}/admin/v1/companies/{company_id}")
        except ApiError as error:
            if error.status in (403, 404):
                return None
            raise

    # tracking ----------------------------------------------------------------------
    def overview(self, limit: int = 20) -> dict[str, Any]:
        return self._call("GET", f"{self.tracking}/v1/transactions", params={"limit": limit})

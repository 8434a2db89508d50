"""Identity's help-desk API (``/admin/v1/users``) as the console calls it: always with the
signed-in person's access token. Identity decides (it asks permissions whether the person
holds the help-desk platform power); the console only shows what it answers."""

from __future__ import annotations

import re
from typing import Any

import requests

from services.common.powers import HELPDESK_SUPERVISOR

# The actions on a user a help-desk page offers: path under /admin/v1/users/<id>/.
ACTIONS = {"reactivate": "reactivate", "unlock": "unlock",
           "username-reminder": "username-reminder", "reset-factors": "factors/reset",
           "disable": "disable"}
# The actions identity grants a person only with the supervisor power (least privilege).
SUPERVISOR_ACTIONS = frozenset({"reset-factors", "disable"})
SEARCH_FIELDS = ("q", "email", "company", "status")
USER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class ApiError(Exception):
    """Identity refused or failed. ``message`` is identity's own (translated) detail, safe
    to show; ``errors`` its per-field messages."""

    def __init__(self, message: str, status: int | None = None,
                 errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.errors = errors or {}


class Helpdesk:
    """The help-desk API, called as one person."""

    def __init__(self, base_url: str, access_token: str, timeout: float,
                 language: str | None = None) -> None:
        self.base = base_url.rstrip("/") + "/admin/v1"
        self.timeout = timeout
        self.headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
        if language:
            self.headers["Accept-Language"] = language

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = requests.request(method, self.base + path, headers=self.headers,
                                        timeout=self.timeout, **kwargs)
        except requests.RequestException:
            raise ApiError("Identity is not answering; try again in a moment.") from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        if response.status_code >= 400:
            errors = body.get("errors") if isinstance(body.get("errors"), dict) else {}
            raise ApiError(str(body.get("detail") or body.get("title")
                               or f"HTTP {response.status_code}"), response.status_code, errors)
        return body

    def search(self, query: dict[str, str]) -> list[dict[str, Any]]:
        params = {k: v for k, v in query.items() if k in SEARCH_FIELDS and v}
        return self._call("GET", "/users", params=params).get("items", [])

    def user(self, user_id: str) -> dict[str, Any]:
        return self._call("GET", f"/users/{_segment(user_id)}")

    def factors(self, user_id: str) -> dict[str, Any]:
        return self._call("GET", f"/users/{_segment(user_id)}/factors")

    def act(self, user_id: str, action: str, why: str) -> dict[str, Any]:
        """One of :data:`ACTIONS` with its reason; identity's answer (a tracking number for
        reactivation and factor reset)."""
        return self._call("POST", f"/users/{_segment(user_id)}/{ACTIONS[action]}",
                          json={"why": why})


def _segment(user_id: str) -> str:
    """``user_id`` as one path segment of identity's URL; a value that is no user id (dots,
    ``?``, ``#``...) is no user, never a different address."""
    if not USER_ID.fullmatch(user_id):
        raise ApiError("No such user.", 404)
    return user_id


def supervises(permissions_url: str, access_token: str, subject: str, timeout: float) -> bool:
    """Whether the person holds the help-desk supervisor power, asked of permissions with
    their own token (a person may check their own permissions). Only to decide which
    buttons to show: identity decides each action itself. No answer counts as no (the button is
    hidden, and identity would decide anyway)."""
    try:
        response = requests.post(permissions_url.rstrip("/") + "/v1/check",
                                 json={"subject": subject, "action": HELPDESK_SUPERVISOR},
                                 headers={"Authorization": f"Bearer {access_token}"},
                                 timeout=timeout)
        return response.status_code == 200 and response.json().get("allowed") is True
    except (requests.RequestException, ValueError, AttributeError):
        return False

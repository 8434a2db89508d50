"""The new-password policy in the page's language (the rules: ``services.identity.passwords``)."""

from __future__ import annotations

from services.identity.i18n import _
from services.identity.passwords import check_password_policy


def check_new_password(password: str, username: str, email: str | None) -> list[str]:
    """Why ``password`` cannot be a new password (empty list: it can)."""
    return [_(p) for p in check_password_policy(password, username, email)]

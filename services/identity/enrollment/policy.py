"""The new-password policy: identity's rules plus the common-passwords list.

``data/common-passwords.txt.gz`` holds the 100,000 most common passwords (see
data/README.md for its source); it is loaded once, lower-cased, into a frozenset.
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

from services.identity.passwords import EXTRA_CHECKS, check_password_policy

from .i18n import _

COMMON_PASSWORDS = Path(__file__).resolve().parent / "data" / "common-passwords.txt.gz"


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    with gzip.open(COMMON_PASSWORDS, "rt", encoding="utf-8", errors="replace") as handle:
        return frozenset(line.strip().lower() for line in handle if line.strip())


def is_common(password: str) -> bool:
    return password.strip().lower() in common_passwords()


def common_password_check(password: str) -> list[str]:
    """An ``EXTRA_CHECKS`` hook for identity's policy."""
    if is_common(password):
        return [_("This password is too common. Choose another one.")]
    return []


def check_new_password(password: str, username: str, email: str | None) -> list[str]:
    """Why ``password`` cannot be a new password (empty list: it can)."""
    problems = [_(p) for p in check_password_policy(password, username, email)]
    if common_password_check not in EXTRA_CHECKS:
        problems.extend(common_password_check(password))
    return problems

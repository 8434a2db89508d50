"""Password hashing (argon2id, OWASP parameters) and the password policy."""

from __future__ import annotations

from collections.abc import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)

MIN_LENGTH = 12

# A hash of a random password: verified against when the username is unknown, so that
# a login costs the same whether or not the user exists.
_DUMMY_HASH = HASHER.hash("portico-dummy-password-never-valid")

# Extra checks plugged in by later work (e.g. a common/breached-password list). Each
# takes the password and returns a list of problems.
EXTRA_CHECKS: list[Callable[[str], list[str]]] = []


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; always does one argon2 verification."""
    try:
        return HASHER.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return HASHER.check_needs_rehash(password_hash)


def check_password_policy(password: str, username: str, email: str | None) -> list[str]:
    """The reasons ``password`` is not acceptable (empty when it is)."""
    problems: list[str] = []
    if len(password) < MIN_LENGTH:
        problems.append(f"Use at least {MIN_LENGTH} characters.")
    lowered = password.lower()
    if username and username.strip().lower() in lowered:
        problems.append("The password must not contain the username.")
    local_part = (email or "").split("@", 1)[0].strip().lower()
    if len(local_part) >= 3 and local_part in lowered:
        problems.append("The password must not contain the email address.")
    for check in EXTRA_CHECKS:
        problems.extend(check(password))
    return problems

"""Password hashing (argon2id, OWASP parameters) and the password policy.

``data/common-passwords.txt.gz`` holds the 100,000 most common passwords (see
data/README.md for its source); it is loaded once, lower-cased, into a frozenset.
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)

MIN_LENGTH = 12

COMMON_PASSWORDS = Path(__file__).resolve().parent / "data" / "common-passwords.txt.gz"

# A hash of a random password: verified against when the username is unknown, so that
# a login costs the same whether or not the user exists.
_DUMMY_HASH = HASHER.hash("portico-dummy-password-never-valid")


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


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    with gzip.open(COMMON_PASSWORDS, "rt", encoding="utf-8", errors="replace") as handle:
        return frozenset(line.strip().lower() for line in handle if line.strip())


def is_common(password: str) -> bool:
    return password.strip().lower() in common_passwords()


def check_password_policy(password: str, username: str, email: str | None) -> list[str]:
    """The reasons ``password`` is not acceptable (empty when it is), in English (the
    pages translate them)."""
    problems: list[str] = []
    if len(password) < MIN_LENGTH:
        problems.append(f"Use at least {MIN_LENGTH} characters.")
    lowered = password.lower()
    if username and username.strip().lower() in lowered:
        problems.append("The password must not contain the username.")
    local_part = (email or "").split("@", 1)[0].strip().lower()
    if len(local_part) >= 3 and local_part in lowered:
        problems.append("The password must not contain the email address.")
    if is_common(password):
        problems.append("This password is too common. Choose another one.")
    return problems

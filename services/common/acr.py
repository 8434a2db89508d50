"""Authentication context classes (``acr``): the three levels Portico's tokens name, one
source of truth for every service. Identity computes a session's level
(``services/identity/acr.py: acr_for``); permissions compares a token's level with the
one an entitlement requires. docs/authentication.md defines the levels.
"""

from __future__ import annotations

SINGLE_FACTOR = "urn:portico:acr:pwd"  # a password alone
MULTI_FACTOR = "urn:portico:acr:mfa"  # a password and a second factor
PHISHING_RESISTANT = "urn:portico:acr:phr"  # a phishing-resistant authenticator (a passkey)
LEVELS = (SINGLE_FACTOR, MULTI_FACTOR, PHISHING_RESISTANT)  # weakest first: discovery's acr_values_supported
# The one level before these existed; a request naming it asks for SINGLE_FACTOR.
LEGACY = {"urn:portico:acr:password": SINGLE_FACTOR}


def level(value: object) -> str | None:
    """The level a requested or claimed ``acr`` value names (the legacy one included), or
    None (not a string, or not a level)."""
    if not isinstance(value, str):
        return None
    value = LEGACY.get(value, value)
    return value if value in LEVELS else None


def satisfies(reached: str | None, wanted: str) -> bool:
    """Whether a session at level ``reached`` meets a requirement of ``wanted``. An unknown
    level (None, or a value that names none: a token without ``acr``) meets nothing."""
    known = level(reached)
    return known is not None and LEVELS.index(known) >= LEVELS.index(wanted)

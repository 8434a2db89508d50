"""Authentication context classes: how strongly the person behind a session proved who
they are, named in ID tokens' ``acr`` and computed from the session's ``amr`` (RFC 8176
method values). docs/authentication.md defines the levels.
"""

from __future__ import annotations

from collections.abc import Iterable

SINGLE_FACTOR = "urn:portico:acr:pwd"  # a password alone
MULTI_FACTOR = "urn:portico:acr:mfa"  # a password and a second factor
PHISHING_RESISTANT = "urn:portico:acr:phr"  # a phishing-resistant authenticator (a passkey)
LEVELS = (SINGLE_FACTOR, MULTI_FACTOR, PHISHING_RESISTANT)  # weakest first: discovery's acr_values_supported
# The one level before these existed; a request naming it asks for SINGLE_FACTOR.
LEGACY = {"urn:portico:acr:password": SINGLE_FACTOR}

_PHISHING_RESISTANT_METHODS = frozenset({"hwk", "swk"})


def acr_for(amr: Iterable[str]) -> str:
    """The level a session's authentication methods reach."""
    methods = set(amr)
    if methods & _PHISHING_RESISTANT_METHODS:
        return PHISHING_RESISTANT
    if "mfa" in methods:
        return MULTI_FACTOR
    return SINGLE_FACTOR


def level(value: str) -> str | None:
    """The level a requested ``acr`` value names (the legacy one included), or None."""
    value = LEGACY.get(value, value)
    return value if value in LEVELS else None


def satisfies(reached: str, wanted: str) -> bool:
    """Whether a session at level ``reached`` meets a request for ``wanted``."""
    return LEVELS.index(reached) >= LEVELS.index(wanted)

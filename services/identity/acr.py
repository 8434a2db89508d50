"""Authentication context classes: how strongly the person behind a session proved who
they are, named in ID tokens' ``acr`` and computed from the session's ``amr`` (RFC 8176
method values). docs/authentication.md defines the levels.
"""

from __future__ import annotations

from collections.abc import Iterable

# The levels and their order are shared with every service (services/common/acr.py);
# identity's modules name them through this one.
from services.common.acr import (  # noqa: F401 (re-exported)
    LEGACY,
    LEVELS,
    MULTI_FACTOR,
    PHISHING_RESISTANT,
    SINGLE_FACTOR,
    level,
    satisfies,
)

_PHISHING_RESISTANT_METHODS = frozenset({"hwk", "swk"})


def acr_for(amr: Iterable[str]) -> str:
    """The level a session's authentication methods reach."""
    methods = set(amr)
    if methods & _PHISHING_RESISTANT_METHODS:
        return PHISHING_RESISTANT
    if "mfa" in methods:
        return MULTI_FACTOR
    return SINGLE_FACTOR


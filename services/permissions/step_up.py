"""Step-up: an entitlement of the catalog may require an authentication level
(``entitlements.required_acr``, a level of :mod:`services.common.acr`). A check that would
allow it answers ``step_up_required`` with that level instead when the level presented
for the subject is lower, and approving an access request (the ``entitlements.approve``
power) is refused so too.

The level presented is always a claim of a token Portico signed, never a client's word:
the caller's own access token when the caller is the subject, or a ``subject_token``
(the subject's access token for permissions) that a service forwards (see
``api/checks.py``). No level (a service asking without one, a token without ``acr``)
meets no requirement.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from services.common.acr import satisfies
from services.common.domain_errors import Forbidden

from .cache import Snapshot
from .models import Entitlement

STEP_UP_REQUIRED = "step_up_required"
APPROVE = "entitlements.approve"  # the power of deciding access requests


def required_level(snapshot: Snapshot, action: str) -> str | None:
    """The level the entitlement ``action`` requires, as the user's snapshot carries it
    (``"l"``: only the entitlements they hold that require one)."""
    levels = snapshot.get("l")
    return levels.get(action) if levels else None


def lacks(presented: str | None, needed: str | None) -> bool:
    """Whether a token at ``presented`` falls short of ``needed`` (None: nothing needed)."""
    return needed is not None and not satisfies(presented, needed)


def require_level(session: Session, key: str, presented: str | None) -> None:
    """Refuse (403 ``step-up-required``, with ``reason`` and the ``acr`` to reach) when the
    catalog's ``key`` requires a level above ``presented``."""
    entitlement = session.get(Entitlement, key)
    needed = entitlement.required_acr if entitlement is not None else None
    if lacks(presented, needed):
        raise Forbidden("This needs a stronger sign-in: sign in again at the level named "
                        "in acr.", kind="step-up-required", reason=STEP_UP_REQUIRED,
                        acr=needed)

"""Step-up: finishing an action that asked for a stronger sign-in.

When Portico answers ``step_up_required`` with a level (a check of ``cards.cancel``, or
permissions refusing an approval), the view saves the action as *pending* in the user's
server-side session record (:func:`remember`: never in the cookie) and sends the user to
Portico's ``/authorize`` with ``acr_values=<level>``. The callback hands the pending
action to :func:`resume` with the new session: the action runs again with the *new*
access token, so Portico (not the portal) decides whether the sign-in reached the level.
A pending action is used once, belongs to the user who started it, and expires after
:data:`PENDING_TTL` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flask import Response

from services.common.acr import level as known_level

PENDING = "pending"
PENDING_TTL = 600
Finisher = Callable[[dict[str, Any], dict[str, Any]], Response]
_FINISHERS: dict[str, Finisher] = {}


def finisher(kind: str) -> Callable[[Finisher], Finisher]:
    """Register the function that finishes a pending action of ``kind`` (``record`` of
    the new session, the action's ``params``)."""

    def register(function: Finisher) -> Finisher:
        _FINISHERS[kind] = function
        return function

    return register


def remember(record: dict[str, Any], kind: str, params: dict[str, Any], acr: str) -> str | None:
    """Put the pending action in ``record`` (the caller saves it); the level to ask for,
    or None when Portico named no level the portal knows (nothing is remembered)."""
    wanted = known_level(acr)
    if wanted is None or kind not in _FINISHERS:
        return None
    record[PENDING] = {"kind": kind, "params": params, "acr": wanted, "sub": record["sub"],
                       "at": time.time()}
    return wanted


def carried_over(old: dict[str, Any] | None, sub: str | None) -> dict[str, Any] | None:
    """The pending action of the session that is being replaced, if it is the same
    user's and still fresh."""
    pending = (old or {}).get(PENDING)
    if not isinstance(pending, dict) or pending.get("sub") != sub:
        return None
    if time.time() - float(pending.get("at", 0)) > PENDING_TTL:
        return None
    return pending if pending.get("kind") in _FINISHERS else None


def resume(pending: dict[str, Any], record: dict[str, Any]) -> Response:
    """Finish ``pending`` as the user of ``record`` (the session the step-up started)."""
    return _FINISHERS[pending["kind"]](record, pending["params"])

"""What an authorization request asks of the authentication: the levels named in
``acr_values`` (voluntary) or in an essential ``acr`` claim of the ``claims`` parameter
(OpenID Connect Core §5.5.1.1), else the client's ``default_acr_values``, and what the
request needs given the session's level.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .. import acr


class Need(enum.Enum):
    NOTHING = "nothing"  # met, or asked voluntarily and out of reach: go on
    SECOND_FACTOR = "second-factor"  # the user can step up with a factor they have
    PASSKEY = "passkey"  # the user can step up to phishing-resistant with their passkey
    UNMET = "unmet"  # asked as essential and out of reach


@dataclass(frozen=True)
class AcrRequest:
    levels: tuple[str, ...]  # the known levels asked, in the client's order
    essential: bool


class MalformedClaims(ValueError):
    """The ``claims`` parameter is not a JSON object."""


def _essential_acr(raw: str | None) -> tuple[list[str], bool]:
    if not raw:
        return [], False
    try:
        claims = json.loads(raw)
    except ValueError:
        raise MalformedClaims from None
    if not isinstance(claims, dict):
        raise MalformedClaims
    wanted = (claims.get("id_token") or {}).get("acr") if isinstance(
        claims.get("id_token"), dict) else None
    if not isinstance(wanted, dict):
        return [], False
    values = wanted.get("values") or ([wanted["value"]] if "value" in wanted else [])
    return [v for v in values if isinstance(v, str)], wanted.get("essential") is True


def parse(params: Mapping[str, str], default: Sequence[str] = ()) -> AcrRequest | None:
    """The request's asked levels, or None when it asks none. An essential ``acr`` claim
    naming no level this provider knows is still essential (and cannot be met). A
    request naming no level asks the client's ``default`` ones (its registered
    ``default_acr_values``), voluntarily as ``acr_values`` would."""
    values, essential = _essential_acr(params.get("claims"))
    if not values:
        values = (params.get("acr_values") or "").split()
    if not values and default:
        values, essential = list(default), False  # registered, never essential
    if not values:
        return None
    known = tuple(level for level in (acr.level(v) for v in values) if level is not None)
    return AcrRequest(known, essential)


def need(request: AcrRequest, amr: list[str], has_second_factor: bool,
         has_passkey: bool = False) -> Need:
    """What the session (``amr``) still needs to meet ``request``: a second step for
    ``mfa`` (any factor the user holds), a passkey for ``phr``."""
    if not request.levels:
        return Need.UNMET if request.essential else Need.NOTHING
    target = min(request.levels, key=acr.LEVELS.index)
    reached = acr.acr_for(amr)
    if acr.satisfies(reached, target):
        return Need.NOTHING
    if target == acr.MULTI_FACTOR and has_second_factor:
        return Need.SECOND_FACTOR
    if target == acr.PHISHING_RESISTANT and has_passkey:
        return Need.PASSKEY
    return Need.UNMET if request.essential else Need.NOTHING

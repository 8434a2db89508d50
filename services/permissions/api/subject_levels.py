"""Which authentication level a check counts for its subject (see :mod:`..step_up`).

A security decision: the level must come from a token Portico signed, never from a
client's word. So, for each check:

1. a ``subject_token`` in the check: the subject's own access token, which a service
   (scope ``permissions.check``) forwards. It counts only if it verifies as a bearer token
   to permissions would (signature by identity's keys, ``iss``, ``typ`` at+jwt, audience
   ``permissions``, not expired), its ``sub`` is the check's subject, and it is not
   revoked (its ``jti`` or its client, read in the check's one Redis round trip). Its
   ``acr`` claim is the level. A token that fails any of these is no level at all (the
   lowest), never an error: the answer is then ``step_up_required`` where a level is
   required, as for a service that sends none;
2. else, when the caller is the subject (a person's own token, not a client's), the
   ``acr`` claim of the caller's token;
3. else none: a service asking about a user without the user's token cannot vouch for
   how the user signed in.

Verified tokens are cached per process (:class:`services.common.auth.ClaimsCache`), so a
repeated subject token costs no signature check, and its revocation keys are read in the
same MGET as the subjects' versions: the hot path keeps its single round trip at most.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.common.auth import InvalidToken, TokenVerifier, revocation_keys, revoked_by
from services.common.powers import is_client_token


@dataclass
class SubjectLevels:
    """The level of each check, before the subject tokens' revocation is known."""

    levels: list[str | None]
    keys: list[str] = field(default_factory=list)  # revocation keys to read with the versions
    # (check index, first key's index in ``keys``, number of keys, the token's claims)
    pending: list[tuple[int, int, int, dict[str, Any]]] = field(default_factory=list)

    def settle(self, values: list[bytes | None] | None) -> list[str | None]:
        """The levels, once ``values`` (read at :attr:`keys`) say which subject tokens are
        revoked; None (Redis could not answer): every subject token counts for nothing."""
        levels = list(self.levels)
        for index, start, count, claims in self.pending:
            if values is None or revoked_by(claims, list(values[start:start + count])):
                levels[index] = None
        return levels


def _acr(claims: dict[str, Any]) -> str | None:
    value = claims.get("acr")
    return value if isinstance(value, str) else None


def _subject_claims(verifier: TokenVerifier, token: str, subject: str) -> dict[str, Any] | None:
    try:
        claims = verifier.verify(token, check_revocation=False)
    except InvalidToken:
        return None
    if claims.get("sub") != subject or is_client_token(claims):
        return None
    return claims


def subject_levels(verifier: TokenVerifier, caller: dict[str, Any],
                   checks: list[dict[str, Any]]) -> SubjectLevels:
    """Each check's level as the module's rules say (revocation still to settle)."""
    own = None if is_client_token(caller) else caller.get("sub")
    found = SubjectLevels([])
    for index, check in enumerate(checks):
        token = check.get("subject_token")
        if token is None:
            found.levels.append(_acr(caller) if check["subject"] == own else None)
            continue
        claims = _subject_claims(verifier, token, check["subject"])
        if claims is None or verifier.deny_list is None:
            found.levels.append(None)  # unverifiable, or no deny-list to read: no level
            continue
        keys = revocation_keys(verifier.deny_list.namespace, claims)
        found.pending.append((index, len(found.keys), len(keys), claims))
        found.keys.extend(keys)
        found.levels.append(_acr(claims))
    return found

"""A company's MFA policy and what it asks of one signed-in user: the rule alone, no I/O.

A company's ``mfa`` policy is one of:

* ``optional``: a second factor is offered, never required;
* ``required``: a second factor (an authenticator app or a passkey) is needed;
* ``phishing_resistant``: a passkey is needed (an authenticator app does not count).

A policy that requires a factor binds the users who existed when it was set only after
its grace period (``grace_days`` after it was set); a user created later is bound at
once (their first login ends with enrolment). :func:`decide` answers, for a user with
given factors at a time and the ``amr`` of their sign-in, one :class:`Standing`:

* ``NOTHING``: go on;
* ``PROMPT``: the skippable "add a passkey" page (no factor, or none that the policy
  will accept, and not snoozed; under a requiring policy during the grace period, with
  the day it binds);
* ``ENROL``: the page, not skippable: the user must add a factor of ``accepted`` kinds;
* ``PROVE``: the user has a factor the policy accepts but did not sign in with it: they
  must prove it (``accepted`` the kinds they may prove).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta


class MfaPolicy(enum.StrEnum):
    OPTIONAL = "optional"
    REQUIRED = "required"
    PHISHING_RESISTANT = "phishing_resistant"


class Factor(enum.StrEnum):
    TOTP = "totp"
    PASSKEY = "passkey"


class Standing(enum.StrEnum):
    NOTHING = "nothing"
    PROMPT = "prompt"
    ENROL = "enrol"
    PROVE = "prove"


GRACE_DAYS_MAX = 90

# The factors each policy accepts; an optional policy accepts any (it requires none).
ACCEPTED: dict[MfaPolicy, frozenset[Factor]] = {
    MfaPolicy.OPTIONAL: frozenset(Factor),
    MfaPolicy.REQUIRED: frozenset(Factor),
    MfaPolicy.PHISHING_RESISTANT: frozenset({Factor.PASSKEY}),
}
# RFC 8176 methods that show a sign-in used a factor of that kind ("mfa" after a code).
_PROVEN_BY = {Factor.TOTP: frozenset({"otp", "mfa"}), Factor.PASSKEY: frozenset({"hwk", "swk"})}


@dataclass(frozen=True)
class CompanyPolicy:
    """A company's policy, ``set_at`` when it last changed (None: never set)."""

    policy: MfaPolicy = MfaPolicy.OPTIONAL
    set_at: datetime | None = None
    grace_days: int = 0

    def binds_from(self, user_created_at: datetime) -> datetime:
        """When the policy binds a user: after the grace period for a user who existed
        when it was set; a user created since is bound from the start (``set_at``, which
        does not depend on the user's row being stamped by the same clock)."""
        if self.set_at is None:
            return user_created_at
        if user_created_at >= self.set_at:
            return self.set_at
        return self.set_at + timedelta(days=self.grace_days)


OPTIONAL = CompanyPolicy()


@dataclass(frozen=True)
class Subject:
    """What the rule needs of a user: when they were created, the kinds of factor they
    have now, the methods of this sign-in (``amr``) and the end of a "Not now"."""

    created_at: datetime
    factors: frozenset[Factor]
    amr: frozenset[str]
    snoozed_until: datetime | None = None


@dataclass(frozen=True)
class Decision:
    standing: Standing
    # The kinds of factor that satisfy the policy (to add, or to prove).
    accepted: frozenset[Factor] = frozenset()
    # Under a requiring policy, when it binds this user (the grace period's end).
    binds_at: datetime | None = None
    policy: MfaPolicy = MfaPolicy.OPTIONAL

    @property
    def blocking(self) -> bool:
        """The session may not be used (no OIDC code) until the user does something."""
        return self.standing in (Standing.ENROL, Standing.PROVE)

    @property
    def skippable(self) -> bool:
        return self.standing is Standing.PROMPT


def proven(amr: frozenset[str], factors: frozenset[Factor]) -> bool:
    """Whether a sign-in with ``amr`` used one of ``factors``."""
    return any(amr & _PROVEN_BY[factor] for factor in factors)


def decide(company: CompanyPolicy, user: Subject, now: datetime) -> Decision:
    """What ``company``'s policy asks of ``user`` at ``now`` (see the module's docstring)."""
    accepted = ACCEPTED[company.policy]
    held = user.factors & accepted
    snoozed = user.snoozed_until is not None and user.snoozed_until > now
    if company.policy is MfaPolicy.OPTIONAL:
        standing = Standing.NOTHING if user.factors or snoozed else Standing.PROMPT
        return Decision(standing, accepted, policy=company.policy)
    binds_at = company.binds_from(user.created_at)
    bound = now >= binds_at
    if held:
        if not bound or proven(user.amr, held):
            return Decision(Standing.NOTHING, held, binds_at, company.policy)
        return Decision(Standing.PROVE, held, binds_at, company.policy)
    if bound:
        return Decision(Standing.ENROL, accepted, binds_at, company.policy)
    standing = Standing.NOTHING if snoozed else Standing.PROMPT
    return Decision(standing, accepted, binds_at, company.policy)

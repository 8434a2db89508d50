"""What a password login comes to: :func:`services.identity.service.authenticate`
returns it and the login page answers each kind in its own way."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .models import User


class LoginOutcome(enum.StrEnum):
    """The kinds of answer to a username and password. The values are what the logs
    give as the reason of a refusal."""

    SIGNED_IN = "signed-in"
    # Unknown username or wrong password: one answer, so that none reveals which.
    BAD_CREDENTIALS = "bad-credentials"
    LOCKED = "locked"
    # The right password of a user ID unused past its period: the page names the help desk.
    INACTIVE = "inactive"
    DISABLED = "disabled"
    # The password was right and the user has a second factor: it must follow
    # (services/identity/factors/second_step.py).
    NEEDS_SECOND_FACTOR = "needs-second-factor"


@dataclass(frozen=True)
class LoginResult:
    outcome: LoginOutcome
    # The user, only once the password matched (signed in, inactive or a second factor to
    # follow); never on a refusal
    # that must not tell a known username from an unknown one.
    user: User | None = None
    # Inactive: the period (days without login) the user let run out.
    inactivity_days: int | None = None

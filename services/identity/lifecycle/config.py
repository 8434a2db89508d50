"""What the account-lifecycle use cases need from ``IdentitySettings`` (the variables are
in docs/configuration.md and docs/lifecycle.md): a typed view of the settings, built
once per process by :func:`config_from`. The defaults live in the settings class only.

The clock of every lifecycle rule is :meth:`LifecycleConfig.now`: the service's clock
moved by ``CLOCK_OFFSET_DAYS``, so a staging run can age accounts by configuration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from services.common.events import utcnow

if TYPE_CHECKING:
    from services.identity.settings import IdentitySettings


@dataclass(frozen=True)
class LifecycleConfig:
    """What the lifecycle use cases need from configuration."""

    sealing_key: str
    public_base_url: str
    lockout_threshold: int
    lockout_minutes: int
    second_factor_max_failures: int
    inactivity_days: int
    inactivity_warning_days: int
    helpdesk_phone: str
    helpdesk_hours: dict[str, str]
    clock_offset_days: int
    password_reset_ttl_minutes: int
    password_reset_max_answers: int
    password_history: int
    email_change_ttl_hours: int
    clock: Callable[[], datetime]

    def now(self) -> datetime:
        return self.clock() + timedelta(days=self.clock_offset_days)


def config_from(settings: IdentitySettings,
                clock: Callable[[], datetime] = utcnow) -> LifecycleConfig:
    return LifecycleConfig(
        sealing_key=settings.event_sealing_key,
        public_base_url=(settings.public_base_url or settings.issuer).rstrip("/"),
        lockout_threshold=settings.lockout_threshold,
        lockout_minutes=settings.lockout_minutes,
        second_factor_max_failures=settings.second_factor_max_failures,
        inactivity_days=settings.inactivity_days,
        inactivity_warning_days=settings.inactivity_warning_days,
        helpdesk_phone=settings.helpdesk_phone,
        helpdesk_hours={"en": settings.helpdesk_hours, "es": settings.helpdesk_hours_es},
        clock_offset_days=settings.clock_offset_days,
        password_reset_ttl_minutes=settings.password_reset_ttl_minutes,
        password_reset_max_answers=settings.password_reset_max_answers,
        password_history=settings.password_history,
        email_change_ttl_hours=settings.email_change_ttl_hours,
        clock=clock,
    )

"""What the account-lifecycle use cases need from ``IdentitySettings`` (the variables are
in docs/configuration.md and docs/lifecycle.md).

The clock of every lifecycle rule is :meth:`LifecycleConfig.now`: the wall clock (or a
test's clock) moved by ``CLOCK_OFFSET_DAYS``, so a staging run can age accounts by
configuration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from services.common.events import utcnow

if TYPE_CHECKING:
    from services.identity.settings import IdentitySettings


@dataclass(frozen=True)
class LifecycleConfig:
    """What the lifecycle use cases need from configuration (built per request or command)."""

    sealing_key: str = ""
    public_base_url: str = "http://127.0.0.1:8001"
    lockout_threshold: int = 5
    lockout_minutes: int = 15
    inactivity_days: int = 120
    inactivity_warning_days: int = 14
    helpdesk_phone: str = "+1 202 555 0100"
    helpdesk_hours: dict[str, str] = field(default_factory=lambda: {
        "en": "Monday to Friday, 9:00 to 18:00", "es": "de lunes a viernes, de 9:00 a 18:00"})
    clock_offset_days: int = 0
    password_reset_ttl_minutes: int = 30
    password_reset_max_answers: int = 3
    password_history: int = 5
    email_change_ttl_hours: int = 24
    clock: Callable[[], datetime] = field(default=utcnow)

    def now(self) -> datetime:
        return self.clock() + timedelta(days=self.clock_offset_days)


def config_from(settings: IdentitySettings,
                clock: Callable[[], datetime] = utcnow) -> LifecycleConfig:
    return LifecycleConfig(
        sealing_key=settings.event_sealing_key,
        public_base_url=(settings.public_base_url or settings.issuer).rstrip("/"),
        lockout_threshold=settings.lockout_threshold,
        lockout_minutes=settings.lockout_minutes,
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

"""Settings of the account lifecycle, read with defaults until ``IdentitySettings`` declares them.

``setting(settings, name)`` returns ``settings.<name>`` when the settings class has the
field, else the default below (the variable names are in docs/lifecycle.md). The clock
of every lifecycle rule is :meth:`LifecycleConfig.now`: the wall clock (or a test's
clock) moved by ``CLOCK_OFFSET_DAYS``, so a staging run can age accounts by configuration.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.common.events import utcnow

DEFAULTS: dict[str, Any] = {
    "lockout_threshold": 5,
    "lockout_minutes": 15,
    "inactivity_days": 120,
    "inactivity_warning_days": 14,
    "helpdesk_phone": "+1 202 555 0100",
    "helpdesk_hours": "Monday to Friday, 9:00 to 18:00",
    "helpdesk_hours_es": "de lunes a viernes, de 9:00 a 18:00",
    "clock_offset_days": 0,
    "password_reset_ttl_minutes": 30,
    "password_reset_max_answers": 3,
    "password_history": 5,
    "email_change_ttl_hours": 24,
    "recovery_rate_limit_ip": "5 per minute;30 per hour",
    "recovery_rate_limit_target": "3 per hour;10 per day",
    "link_rate_limit_ip": "30 per minute;300 per hour",
    "public_base_url": None,
    "rate_limits_enabled": True,
}


def setting(settings: Any, name: str) -> Any:
    """``settings.<name>`` when declared; else the environment variable ``NAME`` (until
    ``IdentitySettings`` declares the field), else the lifecycle default."""
    value = getattr(settings, name, None)
    if value is not None:
        return value
    raw = os.environ.get(name.upper())
    default = DEFAULTS[name]
    if raw is None or raw == "":
        return default
    if isinstance(default, bool):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(raw)
    return raw


@dataclass(frozen=True)
class LifecycleConfig:
    """What the lifecycle use cases need from configuration (built per request or command)."""

    sealing_key: str = ""
    public_base_url: str = "http://127.0.0.1:8001"
    lockout_threshold: int = 5
    lockout_minutes: int = 15
    inactivity_days: int = 120
    inactivity_warning_days: int = 14
    helpdesk_phone: str = DEFAULTS["helpdesk_phone"]
    helpdesk_hours: dict[str, str] = field(default_factory=lambda: {
        "en": DEFAULTS["helpdesk_hours"], "es": DEFAULTS["helpdesk_hours_es"]})
    clock_offset_days: int = 0
    password_reset_ttl_minutes: int = 30
    password_reset_max_answers: int = 3
    password_history: int = 5
    email_change_ttl_hours: int = 24
    clock: Callable[[], datetime] = field(default=utcnow)

    def now(self) -> datetime:
        return self.clock() + timedelta(days=self.clock_offset_days)


def config_from(settings: Any, clock: Callable[[], datetime] = utcnow) -> LifecycleConfig:
    base = setting(settings, "public_base_url") or getattr(settings, "issuer", None) or (
        "http://127.0.0.1:8001")
    return LifecycleConfig(
        sealing_key=settings.event_sealing_key,
        public_base_url=str(base).rstrip("/"),
        lockout_threshold=int(setting(settings, "lockout_threshold")),
        lockout_minutes=int(setting(settings, "lockout_minutes")),
        inactivity_days=int(setting(settings, "inactivity_days")),
        inactivity_warning_days=int(setting(settings, "inactivity_warning_days")),
        helpdesk_phone=str(setting(settings, "helpdesk_phone")),
        helpdesk_hours={"en": str(setting(settings, "helpdesk_hours")),
                        "es": str(setting(settings, "helpdesk_hours_es"))},
        clock_offset_days=int(setting(settings, "clock_offset_days")),
        password_reset_ttl_minutes=int(setting(settings, "password_reset_ttl_minutes")),
        password_reset_max_answers=int(setting(settings, "password_reset_max_answers")),
        password_history=int(setting(settings, "password_history")),
        email_change_ttl_hours=int(setting(settings, "email_change_ttl_hours")),
        clock=clock,
    )

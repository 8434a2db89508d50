"""Settings of the enrollment flow, read with defaults until identity's settings declare them.

Every value comes from ``IdentitySettings`` when it has the field (see docs/enrollment.md for
the variables); otherwise the default below applies, so the package runs before the
settings class is extended.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.common.events import utcnow

DEV_ACCOUNT_FINGERPRINT_KEY = "portico-dev-account-fingerprint-key"
DEV_ACCESS_CODE_KEY = "portico-dev-access-code-key"

DEFAULTS: dict[str, Any] = {
    "account_fingerprint_key": DEV_ACCOUNT_FINGERPRINT_KEY,
    "access_code_key": DEV_ACCESS_CODE_KEY,
    "access_code_ttl_days": 14,
    "verification_link_ttl_hours": 48,
    "activation_max_attempts": 5,
    "activation_ticket_minutes": 15,
    "enrollment_review_companies": (),
    "enrollment_review_all": False,
    "public_base_url": None,  # falls back to the issuer
    "enrollment_rate_limit_ip": "10 per minute;100 per hour",
    "enrollment_rate_limit_target": "3 per hour;10 per day",
    "activation_rate_limit_ip": "10 per minute;60 per hour",
    "activation_rate_limit_target": "10 per hour",
    "rate_limits_enabled": True,
}


def setting(settings: Any, name: str) -> Any:
    """``settings.<name>`` when the settings class declares it, else the package default."""
    value = getattr(settings, name, None)
    return DEFAULTS[name] if value is None else value


@dataclass(frozen=True)
class EnrollmentConfig:
    """What the use cases need from configuration; built per request from the settings."""

    fingerprint_key: bytes
    access_code_key: bytes
    sealing_key: str
    public_base_url: str
    access_code_ttl_days: int = 14
    verification_link_ttl_hours: int = 48
    activation_max_attempts: int = 5
    activation_ticket_minutes: int = 15
    review_companies: frozenset[str] = frozenset()
    review_all: bool = False
    clock: Callable[[], datetime] = field(default=utcnow)

    def now(self) -> datetime:
        return self.clock()


def config_from(settings: Any, clock: Callable[[], datetime] = utcnow) -> EnrollmentConfig:
    review = setting(settings, "enrollment_review_companies")
    if isinstance(review, str):
        review = [item.strip() for item in review.split(",") if item.strip()]
    base = setting(settings, "public_base_url") or settings.issuer
    return EnrollmentConfig(
        fingerprint_key=str(setting(settings, "account_fingerprint_key")).encode(),
        access_code_key=str(setting(settings, "access_code_key")).encode(),
        sealing_key=settings.event_sealing_key,
        public_base_url=str(base).rstrip("/"),
        access_code_ttl_days=int(setting(settings, "access_code_ttl_days")),
        verification_link_ttl_hours=int(setting(settings, "verification_link_ttl_hours")),
        activation_max_attempts=int(setting(settings, "activation_max_attempts")),
        activation_ticket_minutes=int(setting(settings, "activation_ticket_minutes")),
        review_companies=frozenset(item.upper() for item in review),
        review_all=bool(setting(settings, "enrollment_review_all")),
        clock=clock,
    )

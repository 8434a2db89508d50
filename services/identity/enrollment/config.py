"""What the enrollment use cases need from ``IdentitySettings`` (the variables are in
docs/configuration.md and docs/enrollment.md): a typed view of the settings, built once
per process by :func:`config_from`. The defaults live in the settings class only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from services.common.events import utcnow

if TYPE_CHECKING:
    from services.identity.settings import IdentitySettings


@dataclass(frozen=True)
class EnrollmentConfig:
    """What the enrollment use cases need from configuration."""

    fingerprint_key: bytes
    access_code_key: bytes
    sealing_key: str
    public_base_url: str
    access_code_ttl_days: int
    verification_link_ttl_hours: int
    activation_max_attempts: int
    activation_ticket_minutes: int
    review_companies: frozenset[str]
    review_all: bool
    clock: Callable[[], datetime]

    def now(self) -> datetime:
        return self.clock()


def config_from(settings: IdentitySettings,
                clock: Callable[[], datetime] = utcnow) -> EnrollmentConfig:
    return EnrollmentConfig(
        fingerprint_key=settings.account_fingerprint_key.encode(),
        access_code_key=settings.access_code_key.encode(),
        sealing_key=settings.event_sealing_key,
        public_base_url=(settings.public_base_url or settings.issuer).rstrip("/"),
        access_code_ttl_days=settings.access_code_ttl_days,
        verification_link_ttl_hours=settings.verification_link_ttl_hours,
        activation_max_attempts=settings.activation_max_attempts,
        activation_ticket_minutes=settings.activation_ticket_minutes,
        review_companies=frozenset(item.upper() for item in settings.enrollment_review_companies),
        review_all=settings.enrollment_review_all,
        clock=clock,
    )

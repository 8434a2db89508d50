"""What the factor use cases need from ``IdentitySettings``, built once per app."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet

from services.identity.lifecycle.config import LifecycleConfig

if TYPE_CHECKING:
    from services.identity.settings import IdentitySettings


@dataclass(frozen=True)
class FactorsConfig:
    # Lockout, the clock, events and audit rows are the lifecycle's.
    lifecycle: LifecycleConfig
    # Encrypts TOTP seeds at rest: the signing keys' cipher (``KEY_ENCRYPTION_KEY``).
    cipher: Fernet
    # The issuer an authenticator app shows beside the account name.
    issuer_name: str
    # Days a "Not now" on the after-sign-in "add a passkey" page keeps it away.
    prompt_snooze_days: int = 7
    # Whether the skippable prompt is shown where the company's policy is optional.
    prompt_optional: bool = True

    def now(self) -> datetime:
        return self.lifecycle.now()


def config_from(settings: IdentitySettings, lifecycle: LifecycleConfig) -> FactorsConfig:
    return FactorsConfig(lifecycle=lifecycle, cipher=Fernet(settings.key_encryption_key),
                         issuer_name=settings.brand_name,
                         prompt_snooze_days=settings.mfa_prompt_snooze_days,
                         prompt_optional=settings.mfa_prompt_optional)

"""What the passkey use cases (``passkeys.py``) need from configuration, and where a page
can hold a ceremony: a browser accepts only the RP id's own host or a subdomain of it,
never an IP address."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from services.common.events import utcnow

if TYPE_CHECKING:
    from services.identity.settings import IdentitySettings


@dataclass(frozen=True)
class PasskeyConfig:
    """What the passkey use cases need from configuration."""

    rp_id: str
    rp_name: str
    origins: tuple[str, ...]
    timeout_seconds: int
    clock: Callable[[], datetime]

    def now(self) -> datetime:
        return self.clock()


def usable_on(cfg: PasskeyConfig, host: str) -> bool:
    """Whether a page served on ``host`` can hold a ceremony: the browser accepts only
    the RP id itself or a subdomain of it (never an IP address, e.g. make run's
    127.0.0.1, whose passkeys live on localhost)."""
    host = host.lower().rstrip(".")
    return host == cfg.rp_id or host.endswith("." + cfg.rp_id)


def usable_origin(cfg: PasskeyConfig) -> str | None:
    """The first allowed origin a page can hold a ceremony on (None if none can)."""
    return next((origin for origin in cfg.origins
                 if usable_on(cfg, urlsplit(origin).hostname or "")), None)


def config_from(settings: IdentitySettings,
                clock: Callable[[], datetime] = utcnow) -> PasskeyConfig:
    return PasskeyConfig(rp_id=settings.webauthn_rp_id, rp_name=settings.webauthn_rp_name,
                         origins=tuple(settings.webauthn_origins),
                         timeout_seconds=settings.webauthn_timeout_seconds, clock=clock)

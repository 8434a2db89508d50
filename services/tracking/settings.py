"""Settings of the tracking service."""

from __future__ import annotations

import dataclasses

from services.common.config import (
    AsksPermissionsSettings,
    CommonSettings,
    service_database_default,
    setting,
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrackingSettings(CommonSettings, AsksPermissionsSettings):
    database_url: str = setting("DATABASE_URL", service_database_default("tracking"),
                                help="SQLAlchemy URL of the tracking database")

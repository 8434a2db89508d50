"""Settings of the permissions service."""

from __future__ import annotations

import dataclasses

from services.common.config import CommonSettings, service_database_default, setting


@dataclasses.dataclass(frozen=True, kw_only=True)
class PermissionsSettings(CommonSettings):
    database_url: str = setting("DATABASE_URL", service_database_default("permissions"),
                                help="SQLAlchemy URL of the permissions database")

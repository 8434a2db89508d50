"""Settings of the identity service."""

from __future__ import annotations

import dataclasses

from services.common.config import CommonSettings, service_database_default, setting


@dataclasses.dataclass(frozen=True, kw_only=True)
class IdentitySettings(CommonSettings):
    database_url: str = setting("DATABASE_URL", service_database_default("identity"),
                                help="SQLAlchemy URL of the identity database")

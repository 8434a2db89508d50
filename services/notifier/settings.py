"""Settings of the notifier service."""

from __future__ import annotations

import dataclasses

from services.common.config import CommonSettings, service_database_default, setting


@dataclasses.dataclass(frozen=True, kw_only=True)
class NotifierSettings(CommonSettings):
    database_url: str = setting("DATABASE_URL", service_database_default("notifier"),
                                help="SQLAlchemy URL of the notifier database")

"""Settings of the permissions service."""

from __future__ import annotations

import dataclasses

from services.common.config import (
    CommonSettings,
    parse_positive_int,
    service_database_default,
    setting,
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class PermissionsSettings(CommonSettings):
    database_url: str = setting("DATABASE_URL", service_database_default("permissions"),
                                help="SQLAlchemy URL of the permissions database")
    request_ttl_days: int = setting("REQUEST_TTL_DAYS", 14, parse_positive_int,
                                    help="days an access request waits for a decision before it expires")
    request_reminder_days: int = setting("REQUEST_REMINDER_DAYS", 3, parse_positive_int,
                                         help="days before expiry when the principal is reminded (once)")
    cache_max_entries: int = setting("PERMISSIONS_CACHE_MAX_ENTRIES", 50_000, parse_positive_int,
                                     help="users whose check snapshot each process keeps in memory")
    cache_max_age_s: int = setting("PERMISSIONS_CACHE_MAX_AGE", 60, parse_positive_int,
                                   help="seconds a check snapshot is trusted from when it was built, in process or in Redis, even if its version key never changes (bounds a lost invalidation)")
    check_batch_max: int = setting("PERMISSIONS_CHECK_BATCH_MAX", 100, parse_positive_int,
                                   help="most checks accepted by one POST /v1/check/batch")

"""Data migrations of the tracking service."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from services.common.db import Database, upgrade


def test_0003_takes_enrollments_out_of_company_overviews(database_url):
    url = database_url("tracking")
    upgrade("tracking", url, "0002")
    db = Database(url)
    at = datetime(2026, 3, 1, tzinfo=UTC)
    rows = [("PTC-0000-0000-1", "enrollment", "identity"),
            ("PTC-0000-0000-2", "entitlement_request", "permissions"),
            ("PTC-0000-0000-3", "enrollment", "app")]
    try:
        with db.engine.begin() as conn:
            for number, type_, source in rows:
                conn.execute(text(
                    "INSERT INTO transactions (tracking_number, type, owner_user_id, company_id,"
                    " title_en, title_es, status, created_at, updated_at, last_event_at, source)"
                    " VALUES (:n, :t, 'u-1', 'co-a', 'T', 'T', 'submitted', :at, :at, :at, :s)"),
                    {"n": number, "t": type_, "s": source, "at": at})
        upgrade("tracking", url)
        with db.engine.connect() as conn:
            found = {n: c for n, c in conn.execute(text(
                "SELECT tracking_number, company_id FROM transactions"))}
    finally:
        db.dispose()
    assert found == {"PTC-0000-0000-1": None, "PTC-0000-0000-2": "co-a",
                     "PTC-0000-0000-3": "co-a"}

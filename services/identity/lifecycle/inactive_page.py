"""The page an inactive user sees after a correct password: call the help desk."""

from __future__ import annotations

from services.identity.i18n import language, prefer

from .web import cfg, page


def inactive_page(preferred_language: str | None, days: int | None = None):
    """In the user's language (unless ``ui_locales`` asked for another), 403."""
    prefer(preferred_language)
    config = cfg()
    return page("lifecycle/inactive.html", 403, phone=config.helpdesk_phone,
                hours=config.helpdesk_hours.get(language(), config.helpdesk_hours["en"]),
                days=days or config.inactivity_days)

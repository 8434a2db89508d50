"""The lifecycle's messages in English and Spanish: its own Babel domain ``lifecycle``.

The catalog is ``lifecycle/translations/es/LC_MESSAGES/lifecycle.po`` (compile with
``pybabel compile -D lifecycle -d services/identity/lifecycle/translations``). The
language is chosen by identity's selector (enrollment's ``i18n.select_locale``):
``ui_locales``, then the user's preference (``g.preferred_language``), then
``Accept-Language``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flask_babel
from flask import g, has_request_context

from services.identity.enrollment.i18n import LANGUAGES, current_language

TRANSLATIONS = Path(__file__).resolve().parent / "translations"
DOMAIN = flask_babel.Domain(translation_directories=str(TRANSLATIONS), domain="lifecycle")


def _(message: str, **variables: Any) -> str:
    """gettext in the request's language; the English text anywhere else."""
    if has_request_context():
        try:
            return DOMAIN.gettext(message, **variables)
        except KeyError:
            pass
    return message % variables if variables else message


def N_(message: str) -> str:
    return message


def prefer(language: str | None) -> None:
    """Use ``language`` (a user's preference) unless ``ui_locales`` asked for another."""
    if language in LANGUAGES:
        g.preferred_language = language
        flask_babel.refresh()


def language() -> str:
    return current_language()

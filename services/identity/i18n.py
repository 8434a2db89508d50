"""Flask-Babel for identity: English and Spanish, one catalog for every page and message.

The locale is the first supported tag of ``ui_locales`` (query or form, then inside the
``next`` the sign-in page returns to), then the preference of the person the page is
about (a view sets ``g.preferred_language``, see :func:`prefer`), then ``Accept-Language``,
then English. The catalog is ``services/identity/translations/es/LC_MESSAGES/messages.po``
(extract with ``services/identity/babel.cfg``; docs/pages.md says how).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import flask_babel
from flask import Flask, g, has_request_context, request

LANGUAGES = ("en", "es")
TRANSLATIONS = Path(__file__).resolve().parent / "translations"


def _supported(tag: str | None) -> str | None:
    for part in (tag or "").replace("+", " ").split():
        base = part.split("-")[0].split("_")[0].lower()
        if base in LANGUAGES:
            return base
    return None


def _asked_in_next() -> str | None:
    """The ``ui_locales`` of the request the sign-in page returns to (its ``next``)."""
    return " ".join(parse_qs(urlsplit(request.values.get("next", "")).query).get("ui_locales", [])) or None


def select_locale() -> str:
    if not has_request_context():
        return "en"
    return (_supported(request.args.get("ui_locales"))
            or _supported(request.form.get("ui_locales") if request.form else None)
            or _supported(_asked_in_next())
            or _supported(g.get("preferred_language"))
            or request.accept_languages.best_match(LANGUAGES)
            or "en")


def current_language() -> str:
    return str(flask_babel.get_locale() or "en") if has_request_context() else "en"


def init_i18n(app: Flask) -> None:
    """Install Flask-Babel on identity's app, with its locale selector and catalog."""
    if "babel" not in app.extensions:
        flask_babel.Babel(app, locale_selector=select_locale,
                          default_translation_directories=str(TRANSLATIONS))
    app.jinja_env.add_extension("jinja2.ext.i18n")


def _(message: str, **variables: Any) -> str:
    """gettext inside a request; the English text (formatted) anywhere else."""
    if has_request_context():
        try:
            return flask_babel.gettext(message, **variables)
        except KeyError:
            pass
    return message % variables if variables else message


def N_(message: str) -> str:
    """Mark ``message`` for extraction; translated later, where the language is known."""
    return message


def prefer(language: str | None) -> None:
    """Use ``language`` (a user's preference) unless ``ui_locales`` asked for another."""
    if language in LANGUAGES:
        g.preferred_language = language
        flask_babel.refresh()


def language() -> str:
    """The language of the current request's pages."""
    return current_language()

"""The portal's pages in the layout of identity's (issue 29): the same stylesheet and logo
(served from identity's static folder: one copy), the program's name in the header, the
help desk and a language switch in the footer; English and Spanish (Flask-Babel).

The language is ``?lang=`` (remembered for the session), then the signed-in user's own,
then ``Accept-Language``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import flask_babel
from flask import Flask, current_app, request, session

from .auth import current_user

LANGUAGES = ("en", "es")
LANGUAGE_NAMES = {"en": "English", "es": "Español"}
STATIC = Path(__file__).resolve().parents[2] / "services" / "identity" / "static"
TRANSLATIONS = Path(__file__).resolve().parent / "translations"


def init_layout(app: Flask) -> None:
    flask_babel.Babel(app, locale_selector=select_locale,
                      default_translation_directories=str(TRANSLATIONS))
    app.context_processor(layout_context)


def select_locale() -> str:
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        session["lang"] = asked
        return asked
    if session.get("lang") in LANGUAGES:
        return session["lang"]
    record = current_user()
    own = str((record or {}).get("language") or "")[:2]
    return own if own in LANGUAGES else (request.accept_languages.best_match(LANGUAGES) or "en")


def current_language() -> str:
    return str(flask_babel.get_locale() or "en")


def layout_context() -> dict[str, Any]:
    settings = current_app.extensions["portal.settings"]
    lang = current_language()
    return {
        "lang": lang,
        "brand_name": settings.brand_name,
        "helpdesk": {"phone": settings.helpdesk_phone,
                     "tel": "tel:" + re.sub(r"[^\d+]", "", settings.helpdesk_phone),
                     "hours": settings.helpdesk_hours_es if lang == "es"
                     else settings.helpdesk_hours},
        "languages": [{"code": code, "name": LANGUAGE_NAMES[code],
                       "url": f"{request.path}?lang={code}"} for code in LANGUAGES],
    }

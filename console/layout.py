"""The console's pages in the layout of identity's (the same stylesheet, served from
identity's static folder as the portal does) in English or Spanish (Flask-Babel): the
language is ``?lang=`` (remembered for the session), then the person's own, then
``Accept-Language``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flask_babel
from flask import Flask, current_app, request, session

from .auth import SETTINGS, current_user

LANGUAGES = ("en", "es")
LANGUAGE_NAMES = {"en": "English", "es": "Español"}
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
    own = str((current_user() or {}).get("language") or "")[:2]
    return own if own in LANGUAGES else (request.accept_languages.best_match(LANGUAGES) or "en")


def current_language() -> str:
    return str(flask_babel.get_locale() or "en")


def layout_context() -> dict[str, Any]:
    return {"lang": current_language(),
            "brand_name": current_app.extensions[SETTINGS].brand_name,
            "languages": [{"code": code, "name": LANGUAGE_NAMES[code],
                           "url": f"{request.path}?lang={code}"} for code in LANGUAGES]}

"""The console's pages in the layout of identity's (the same stylesheet, served from
identity's static folder as the portal does) in English or Spanish (Flask-Babel), the
language chosen as the portal chooses it (``?lang=``, the session's, the person's own,
``Accept-Language``); the console's own catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flask_babel
from flask import Flask, request

from examples.portal.layout import LANGUAGE_NAMES, LANGUAGES, current_language, select_locale

from .auth import settings

TRANSLATIONS = Path(__file__).resolve().parent / "translations"


def init_layout(app: Flask) -> None:
    flask_babel.Babel(app, locale_selector=select_locale,
                      default_translation_directories=str(TRANSLATIONS))
    app.context_processor(layout_context)


def layout_context() -> dict[str, Any]:
    return {"lang": current_language(),
            "brand_name": settings().brand_name,
            "languages": [{"code": code, "name": LANGUAGE_NAMES[code],
                           "url": f"{request.path}?lang={code}"} for code in LANGUAGES]}

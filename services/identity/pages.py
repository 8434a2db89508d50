"""What every page a person sees shares: the layout's brand, help desk and language switch.

``init_pages(app)`` registers a context processor that gives every template (``base.html``):

* ``brand`` — the program's name and logo URL (settings ``BRAND_*``);
* ``helpdesk`` — its phone (and a ``tel:`` link) and hours in the page's language;
* ``lang`` — the page's language, unless the view passes its own;
* ``languages`` — a link per language to this same page in that language: the query is
  kept and ``ui_locales`` replaced, also inside ``next``, so switching language on the
  sign-in page keeps the authorization request it will return to.

It also serves ``/brand.css`` (the brand colour as CSS custom properties: styles come
only from 'self' under the pages' CSP) and ``/brand/logo`` (the logo, for the emails).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import flask_babel
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    has_request_context,
    redirect,
    request,
    send_file,
    send_from_directory,
    url_for,
)

from services.common.app import context

from .branding import LOGO_TYPES, logo_is_url, stylesheet
from .i18n import LANGUAGES, N_, current_language

bp = Blueprint("pages", __name__)

LANGUAGE_NAMES = {"en": "English", "es": "Español"}
# Form fields a page's GET URL needs to show the same page again (never a secret a person
# typed: those stay in the form).
KEPT_FORM_FIELDS = ("next", "token")
DEFAULT_LOGO = "portico-logo.svg"
DEFAULT_EMAIL_LOGO = "portico-logo.png"

# The messages the views show on error.html (it translates the message it is given).
ERROR_PAGE_MESSAGES = (
    N_("The form expired. Start again from the application."),
    N_("Your session has ended. Start again from the application."),
    N_("The form expired."),
    N_("The id_token_hint is not valid."),
    N_("client_id does not match the hint."),
    N_("The post-logout redirect URI is not registered."),
    N_("The request repeats client_id or redirect_uri."),
    N_("Unknown client."),
    N_("The redirect URI is not registered for this client."),
)

# What a person is told when authlib refuses an authorization request that cannot be sent
# back to the application (RFC 6749 §4.1.2.1), by error code; authlib's own description
# (English, for the application's developers) is shown beneath it, marked as English.
OAUTH_ERROR_MESSAGES = {
    "invalid_request": N_("The application's sign-in request is not valid."),
    "invalid_client": N_("Unknown client."),
    "unauthorized_client": N_("This application may not sign people in this way."),
    "access_denied": N_("The sign-in was not allowed."),
    "unsupported_response_type": N_("The application asked for a kind of sign-in this "
                                    "service does not offer."),
    "invalid_scope": N_("The application asked for permissions this service does not know."),
    "server_error": N_("Something went wrong on our side. Try again later."),
    "temporarily_unavailable": N_("The service is busy. Try again in a few minutes."),
}


def init_pages(app: Flask) -> None:
    app.register_blueprint(bp)
    app.context_processor(layout_context)
    # Jinja's ``_`` would take a message given by a view as markup: this escapes it.
    app.jinja_env.filters["translated"] = flask_babel.gettext


@bp.get("/brand.css")
def brand_css() -> Response:
    response = Response(stylesheet(context().settings.brand_primary_color), mimetype="text/css")
    response.cache_control.public = True
    response.cache_control.max_age = 300
    return response


@bp.get("/brand/logo")
def logo():
    """The configured logo: a file on identity's disk, the URL it names, or the built-in
    one (a PNG: the emails link here and mail programs seldom show SVG)."""
    configured = context().settings.brand_logo
    if not configured:
        return send_from_directory(_static_folder(), DEFAULT_EMAIL_LOGO, max_age=3600)
    if logo_is_url(configured):
        return redirect(configured, 302)
    suffix = configured[configured.rfind("."):].lower()
    return send_file(configured, mimetype=LOGO_TYPES[suffix], max_age=3600)


def layout_context() -> dict[str, Any]:
    settings = context().settings
    lang = current_language()
    found: dict[str, Any] = {
        "lang": lang,
        "brand": {"name": settings.brand_name, "logo_url": _logo_url(settings.brand_logo)},
        "helpdesk": {"phone": settings.helpdesk_phone,
                     "tel": "tel:" + re.sub(r"[^\d+]", "", settings.helpdesk_phone),
                     "hours": settings.helpdesk_hours_es if lang == "es"
                     else settings.helpdesk_hours},
        "languages": [],
    }
    if has_request_context():
        found["languages"] = [{"code": code, "name": LANGUAGE_NAMES[code],
                               "url": same_page_in(code)} for code in LANGUAGES]
    return found


def same_page_in(lang: str) -> str:
    """This page's URL with ``ui_locales=lang`` (and inside ``next``, a local path)."""
    args = [(name, value) for name, value in request.args.items(multi=True)
            if name != "ui_locales"]
    if request.method == "POST":
        names = {name for name, _value in args}
        args += [(name, request.form[name]) for name in KEPT_FORM_FIELDS
                 if name in request.form and name not in names]
    args = [(name, with_locale(value, lang) if name == "next" else value)
            for name, value in args]
    return request.path + "?" + urlencode([*args, ("ui_locales", lang)])


def with_locale(target: str, lang: str) -> str:
    """A local path with its ``ui_locales`` set to ``lang``; anything else unchanged."""
    if not target.startswith("/") or target.startswith("//"):
        return target
    parts = urlsplit(target)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k != "ui_locales"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("ui_locales", lang)])))


def _logo_url(configured: str) -> str:
    if logo_is_url(configured):
        return configured
    if configured:
        return url_for("pages.logo")
    return url_for("static", filename=DEFAULT_LOGO)


def _static_folder() -> str:
    assert current_app.static_folder is not None
    return current_app.static_folder

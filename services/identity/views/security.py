"""Response hardening shared by the HTML views."""

from __future__ import annotations

from functools import wraps

from flask import make_response

# No form-action directive: browsers apply it to the redirects after a POST, and the login
# POST ends (303 → /authorize → 302) at the relying party's redirect_uri, another origin.
HTML_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; "
                               "img-src 'self'; base-uri 'none'; "
                               "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


# A page running identity's own scripts (static/passkeys.js: the WebAuthn ceremonies):
# scripts and fetch() from 'self' only, still no inline script, eval or other origin.
SCRIPTED_CSP = ("default-src 'none'; script-src 'self'; connect-src 'self'; "
                "style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'")


def hardened(view, csp: str | None = None):
    """Add CSP (frame-ancestors 'none'), Referrer-Policy and friends to an HTML view."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        response = make_response(view(*args, **kwargs))
        if csp:
            response.headers.setdefault("Content-Security-Policy", csp)
        for name, value in HTML_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    return wrapper


def scripted(view):
    """:func:`hardened`, for a page that runs identity's own scripts (SCRIPTED_CSP)."""
    return hardened(view, SCRIPTED_CSP)


def no_store(response):
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response

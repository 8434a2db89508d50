"""A WSGI app for the gunicorn configuration test: /slow answers after half a second."""

from __future__ import annotations

import time


def app(environ, start_response):
    if environ.get("PATH_INFO") == "/slow":
        time.sleep(0.5)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"done"]

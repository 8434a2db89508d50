"""A few hot routes answered below Flask.

Why: Flask's per-request machinery (request and app contexts, URL matching, the
kernel's hooks, a ``Response`` object) costs more CPU than a hot endpoint's own work.

The contract that keeps one source of truth: a fast handler answers only the case it
fully understands (a well-formed body, a valid token, the data at hand) and returns
``None`` for anything else. The request is then replayed, body included, through the
Flask app, whose views produce every error and every unusual answer. So a fast handler
must do nothing that matters before it declines: no writes, no events. Two narrow
allowances, each its handler's to justify:

* a count that must happen once per request (a rate limit) may be made if the handler
  leaves its outcome in the WSGI environ, where the view reads it instead of counting
  again (the environ is the same dict on the replay);
* one committed change may be the handler's last decision: after it, the handler
  answers whatever happens and never declines.

Requests the layer itself cannot vouch for never reach a handler: a query string, a
chunked body, a ``Content-Length`` that is not plain digits or is above
``MAX_CONTENT_LENGTH``, a body of another media type than the route's (JSON or a form),
a NUL character. (No ``Content-Length`` at all is an empty body.)

Request ids, metrics and the access-log line are the kernel's own (shared with
:mod:`services.common.app`), so a fast answer is counted and logged like any other.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from werkzeug.http import HTTP_STATUS_CODES

from .fields import whole_number

log = logging.getLogger("portico.http")

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"

# How a NUL character can arrive in a body of each media type (escaped or raw): the
# kernel refuses those with a 400 (``app._install_nul_guard``), so the app must see them.
NUL_MARKERS: dict[str, tuple[bytes, ...]] = {
    JSON: (b"\\u0000", b"\x00"), FORM: (b"%00", b"\x00")}


@dataclass(frozen=True)
class FastAnswer:
    """What a fast handler answers: status, body and its media type, extra headers."""

    status: int
    body: bytes
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()


def json_answer(value: Any, status: int = 200) -> FastAnswer:
    """The bytes Flask's ``jsonify`` would send for ``value`` (compact, sorted keys, a
    trailing newline), so both paths answer alike."""
    body = json.dumps(value, separators=(",", ":"), sort_keys=True) + "\n"
    return FastAnswer(status, body.encode())


class FastRequest:
    """The parts of a WSGI request a fast handler reads."""

    __slots__ = ("body", "environ")

    def __init__(self, environ: dict[str, Any], body: bytes) -> None:
        self.environ = environ
        self.body = body

    def header(self, name: str) -> str:
        return str(self.environ.get("HTTP_" + name.upper().replace("-", "_"), ""))

    def json(self) -> Any:
        """The parsed JSON body, or None if there is none or it does not parse."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None


Handler = Callable[[FastRequest], FastAnswer | None]


@dataclass(frozen=True)
class _Route:
    endpoint: str
    handler: Handler
    media_type: str


class FastRoutes:
    """WSGI middleware: ``(method, path)`` pairs answered by fast handlers, everything
    else (and every request a handler declines) by ``app``, the Flask app's WSGI callable.

    ``observe(endpoint, method, status, seconds, request_id)`` counts and logs an answer;
    ``request_id_for(incoming)`` picks the request id; ``on_request()`` runs first on
    every fast request (the kernel's heap freeze).
    """

    def __init__(self, app: Callable[..., Any], *, max_content_length: int | None,
                 observe: Callable[[str, str, int, float, str], None],
                 request_id_for: Callable[[str], str],
                 on_request: Callable[[], None] = lambda: None) -> None:
        self.app = app
        self.max_content_length = max_content_length
        self.observe = observe
        self.request_id_for = request_id_for
        self.on_request = on_request
        self._routes: dict[tuple[str, str], _Route] = {}

    def add(self, method: str, path: str, handler: Handler, media_type: str = JSON) -> None:
        """Answer ``method path`` with ``handler`` first; ``path`` is also the metrics label
        (the same as the Flask rule of the view it shadows). A body of any other media
        type than ``media_type`` (JSON or a form) goes to the app."""
        self._routes[(method, path)] = _Route(path, handler, media_type)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        route = self._routes.get((environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")))
        length = self._plain_length(environ, route.media_type) if route is not None else None
        if route is None or length is None:
            return self.app(environ, start_response)
        self.on_request()
        started = time.perf_counter()
        body = environ["wsgi.input"].read(length) if length else b""
        answer = None
        if not any(marker in body for marker in NUL_MARKERS[route.media_type]):
            try:
                answer = route.handler(FastRequest(environ, body))
            except Exception as exc:  # the app answers instead, with its own error handling
                log.warning("fast route failed; the app answers",
                            extra={"endpoint": route.endpoint, "error_type": type(exc).__name__})
        if answer is None:
            environ["wsgi.input"] = io.BytesIO(body)
            return self.app(environ, start_response)
        rid = self.request_id_for(environ.get("HTTP_X_REQUEST_ID", ""))
        status = answer.status
        # The status line as werkzeug writes it ("201 CREATED"), so both paths answer alike.
        start_response(f"{status} {HTTP_STATUS_CODES[status].upper()}", [
            ("Content-Type", answer.content_type), ("Content-Length", str(len(answer.body))),
            *answer.headers, ("X-Request-ID", rid)])
        self.observe(route.endpoint, environ["REQUEST_METHOD"], status,
                     time.perf_counter() - started, rid)
        return [answer.body]

    def _plain_length(self, environ: dict[str, Any], media_type: str) -> int | None:
        """The body's length if a fast handler may see the request (no query string, no
        chunked body, a declared length within bounds, of the route's media type if it
        has a body), else None."""
        if environ.get("QUERY_STRING") or "HTTP_TRANSFER_ENCODING" in environ:
            return None
        length = whole_number(environ.get("CONTENT_LENGTH") or "0")
        if length is None:
            return None
        if self.max_content_length is not None and length > self.max_content_length:
            return None
        if length == 0:
            return 0
        sent_type = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
        return length if sent_type == media_type else None

"""JSON log lines with request/correlation ids and redaction of secrets.

Portico never logs request bodies or headers; the redaction here is the second
line of defence for a value that reaches a log call by mistake.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any

SECRET_KEYS = (
    "password", "password_confirm", "current_password", "new_password", "pin",
    "verification_word", "access_code", "client_secret", "secret", "token",
    "access_token", "refresh_token", "id_token", "code", "code_verifier",
    "authorization", "cookie", "set-cookie", "answer", "answers", "sealed",
    "account_number", "account_numbers", "client_assertion",
)
REDACTED = "[redacted]"

_KEYS = "|".join(re.escape(k) for k in sorted(SECRET_KEYS, key=len, reverse=True))
# key=value, key: value, "key": "value" and Authorization-style "Bearer xyz" shapes.
_PATTERNS = [
    # First: "Authorization: Bearer xyz" would otherwise lose only "Bearer" to the
    # key=value pattern, leaving the credential itself in the line.
    re.compile(r"(?i)(\b(?:bearer|basic)\s+)([A-Za-z0-9._~+/=-]+)"),
    re.compile(r'(?i)("(?:' + _KEYS + r')"\s*:\s*)("(?:[^"\\]|\\.)*"|[^,}\s]+)'),
    re.compile(r"(?i)('(?:" + _KEYS + r")'\s*:\s*)('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^,}\s]+)"),
    re.compile(r"(?i)(\b(?:" + _KEYS + r")\b\s*[=:]\s*)([^\s&,;]+)"),
    # A bare 15- or 16-digit run is a card account number; one touching hex letters is an id.
    re.compile(r"()(?<![0-9A-Za-z])\d{15,16}(?![0-9A-Za-z])"),
]


# Every pattern above needs a secret key's name, "bearer"/"basic" or a run of 15 digits
# in its match, so text without any of them is returned after one search instead of
# five substitutions (every request's log line pays this on each of its strings). The
# search runs case-sensitively on the case-folded text, quicker than a case-insensitive
# search, and casefold() maps at least
# what (?i) does (the long s, the Kelvin sign) onto the lowercase names.
_MAY_HOLD_SECRET = re.compile(_KEYS + r"|bearer|basic|\d{15}")
_SECRET_KEY_SET = frozenset(SECRET_KEYS)


def redact_text(text: str) -> str:
    if _MAY_HOLD_SECRET.search(text.casefold()) is None:
        return text
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


def redact(value: Any) -> Any:
    """A copy of ``value`` with the values of secret-named keys replaced."""
    if isinstance(value, dict):
        return {
            k: (REDACTED if str(k).lower() in _SECRET_KEY_SET else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """A record's own fields (its ``extra``), redacted. The formatters redact them, not the
    record factory: ``Logger.makeRecord`` attaches them after the factory has run."""
    return redact({key: val for key, val in vars(record).items()
                   if key not in _EXTRA_SKIP and not key.startswith("_")})


_EXTRA_SKIP = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


# json.dumps(..., default=str) builds an encoder on every call; one serves every line.
_ENCODER = json.JSONEncoder(default=str)
# How that encoder writes a str (ensure_ascii): quoted, escaped, non-ASCII as \\uXXXX.
_json_text = json.encoder.encode_basestring_ascii


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": timestamp(record.created),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
            **record_fields(record),
        }
        if record.exc_info:
            # Exception type only: a traceback can hold locals, SQL or secrets.
            entry["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            entry["exc"] = redact_text(self.formatException(record.exc_info))
        return _ENCODER.encode(entry)


def timestamp(created: float) -> str:
    """A line's ``ts``: UTC, ISO 8601, milliseconds."""
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")


_base_factory = logging.getLogRecordFactory()


def _redacting_record_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """Redact the message at the moment a record is made, so every handler (gunicorn's,
    pytest's, a library's) sees only the redacted text. (Its fields: see record_fields.)"""
    record = _base_factory(*args, **kwargs)
    try:
        message = record.getMessage()
    except Exception:  # a bad format string must not lose the line
        message = str(record.msg)
    record.msg = redact_text(message)
    record.args = None
    return record


class PlainFormatter(logging.Formatter):
    """Readable lines for a terminal (``LOG_JSON=false``): the message, then its fields."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(f"{key}={val}" for key, val in record_fields(record).items())
        return f"{line} {fields}" if fields else line


def configure_logging(service: str, level: str = "INFO", json_lines: bool = True,
                      stream=None) -> None:
    """Route the root logger to ``stream`` (stderr) in JSON with redaction. Idempotent."""
    if logging.getLogRecordFactory() is not _redacting_record_factory:
        logging.setLogRecordFactory(_redacting_record_factory)
    # Neither formatter prints a record's source line, thread or multiprocessing name, so
    # skip collecting them (the logging HOWTO's "Optimization"): finding the caller's
    # frame was a sixth of each request's log line. The process id stays (gunicorn's
    # own lines print it).
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_portico", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._portico = True  # type: ignore[attr-defined]
    if json_lines:
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(PlainFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    # werkzeug's own access log prints the full URL (query strings can hold codes).
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


class AccessLog:
    """Writes the one line every answered request logs (``msg: request``), the line
    ``logger.info("request", extra={method, endpoint, status, duration_ms, request_id})``
    would write.

    Why not that call: a record's life (made, handed from logger to handler, formatted,
    its fields redacted one by one) costs every request CPU the hot endpoints cannot spare.
    When the root logger's only handler is
    the service's JSON one (deployed services: ``configure_logging``), the line is put
    together here, byte for byte what :class:`JsonFormatter` writes (a test holds the
    two to it): the strings JSON-escaped as ``json.dumps`` does, every one of them
    through :func:`redact_text`, and written under that handler's lock. Method and
    endpoint come from a small set, so their escaped, redacted text is kept. Anything
    else (plain lines for ``make run``, a test's capture handler, a raised level,
    filters) takes the logging call, so nothing that listens misses a line."""

    _KEPT_TEXTS = 1024  # distinct method/endpoint/service texts kept, at most

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._texts: dict[str, str] = {}

    def write(self, method: str, endpoint: str, status: int, duration_ms: float,
              request_id: str | None) -> None:
        handler = self._json_handler()
        if handler is None:
            self.logger.info("request", extra={
                "method": method, "endpoint": endpoint, "status": status,
                "duration_ms": duration_ms, "request_id": request_id})
            return
        formatter = handler.formatter
        assert isinstance(formatter, JsonFormatter)
        ts = timestamp(time.time())
        rid = "null" if request_id is None else _json_text(redact_text(request_id))
        line = (f'{{"ts": "{ts}", "level": "info", "service": {self._text(formatter.service)}, '
                f'"logger": {self._text(self.logger.name)}, "msg": "request", '
                f'"method": {self._text(method)}, "endpoint": {self._text(endpoint)}, '
                f'"status": {int(status)!r}, "duration_ms": {float(duration_ms)!r}, '
                f'"request_id": {rid}}}{handler.terminator}')
        handler.acquire()
        try:
            handler.stream.write(line)
            handler.flush()
        finally:
            handler.release()

    def _text(self, value: str) -> str:
        """``value`` redacted and JSON-escaped, kept for the next time."""
        text = self._texts.get(value)
        if text is None:
            text = _json_text(redact_text(value))
            if len(self._texts) < self._KEPT_TEXTS:
                self._texts[value] = text
        return text

    def _json_handler(self) -> logging.StreamHandler | None:
        """The root's JSON handler if it alone would write this logger's INFO lines."""
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO) or logger.filters:
            return None
        root = logging.getLogger()
        node: logging.Logger | None = logger
        while node is not None and node is not root:  # the loggers the record passes
            if node.handlers or not node.propagate:
                return None
            node = node.parent
        handlers = root.handlers
        if len(handlers) != 1:
            return None
        handler = handlers[0]
        if not getattr(handler, "_portico", False) or handler.filters \
                or handler.level > logging.INFO \
                or not isinstance(handler.formatter, JsonFormatter):
            return None
        return handler  # type: ignore[return-value]  # configure_logging's StreamHandler

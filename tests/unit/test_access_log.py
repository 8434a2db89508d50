"""services.common.logging.AccessLog: the line a deployed service writes for every
request, built without a log record, must be the line the logging call writes."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from services.common.logging import AccessLog, configure_logging

FIELDS = {"method": "POST", "endpoint": "/v1/check", "status": 200, "duration_ms": 1.25,
          "request_id": "0f3c9a"}


class Records:
    """Counts the log records made (the record factory in front of the service's own)."""

    def __init__(self) -> None:
        self.made = 0
        self.inner = logging.getLogRecordFactory()

    def __call__(self, *args, **kwargs) -> logging.LogRecord:
        self.made += 1
        return self.inner(*args, **kwargs)


@contextlib.contextmanager
def deployed() -> Iterator[tuple[io.StringIO, Records]]:
    """Logging as a deployed service has it: the JSON handler alone on the root logger
    (pytest's capture handlers, added around each test phase, are set aside)."""
    stream = io.StringIO()
    configure_logging("permissions", "INFO", True, stream=stream)
    root = logging.getLogger()
    others = [h for h in root.handlers if not getattr(h, "_portico", False)]
    for handler in others:
        root.removeHandler(handler)
    records = Records()
    logging.setLogRecordFactory(records)
    try:
        yield stream, records
    finally:
        logging.setLogRecordFactory(records.inner)
        for handler in others:
            root.addHandler(handler)
        configure_logging("permissions", "INFO", True)


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_the_line_is_the_logging_calls_line_without_a_record():
    logger = logging.getLogger("portico.http")
    with deployed() as (stream, records):
        AccessLog(logger).write(**FIELDS)
        assert records.made == 0
        logger.info("request", extra=dict(FIELDS))
        assert records.made == 1
    built, logged = stream.getvalue().splitlines()
    assert _without_ts(built) == _without_ts(logged)  # byte for byte
    assert json.loads(built)["service"] == "permissions"
    assert json.loads(built)["request_id"] == "0f3c9a"


@pytest.mark.parametrize("fields", [
    {**FIELDS, "request_id": None},
    {**FIELDS, "method": "PRÜFEN", "endpoint": '/a "quoted" \\ path', "duration_ms": 0.0},
    {**FIELDS, "status": 503, "duration_ms": 1234.56, "endpoint": "unmatched"},
])
def test_unusual_values_are_written_as_the_formatter_writes_them(fields):
    logger = logging.getLogger("portico.http")
    with deployed() as (stream, _):
        AccessLog(logger).write(**fields)
        logger.info("request", extra=dict(fields))
    built, logged = stream.getvalue().splitlines()
    assert _without_ts(built) == _without_ts(logged)


def _without_ts(line: str) -> str:
    return re.sub(r'^\{"ts": "[^"]*"', "", line)


def test_its_fields_are_redacted_as_a_records_are():
    logger = logging.getLogger("portico.http")
    fields = {**FIELDS, "request_id": "4111111111111111", "method": "GET",
              "endpoint": "/v1/token=abc"}
    with deployed() as (stream, records):
        AccessLog(logger).write(**fields)
        logger.info("request", extra=dict(fields))
        assert records.made == 1
    built, logged = _lines(stream)
    assert built["request_id"] == logged["request_id"] == "[redacted]"
    assert built["endpoint"] == logged["endpoint"] == "/v1/token=[redacted]"
    assert "4111111111111111" not in stream.getvalue()


@pytest.mark.parametrize("change", ["capture handler", "plain lines", "level", "parent handler"])
def test_anything_else_listening_gets_the_record(change):
    with deployed() as (stream, records):
        _write_with(change, stream, records)


def _write_with(change: str, stream: io.StringIO, records: Records) -> None:
    logger = logging.getLogger("portico.http")
    seen: list[logging.LogRecord] = []
    capture = logging.Handler()
    capture.emit = seen.append  # type: ignore[method-assign]
    undo = []
    if change == "capture handler":
        logging.getLogger().addHandler(capture)
        undo.append(lambda: logging.getLogger().removeHandler(capture))
    elif change == "plain lines":
        configure_logging("permissions", "INFO", False, stream=stream)
        logging.setLogRecordFactory(records)  # configuring put the service's own back
    elif change == "level":
        logger.setLevel(logging.WARNING)
        undo.append(lambda: logger.setLevel(logging.NOTSET))
    else:
        logging.getLogger("portico").addHandler(capture)
        undo.append(lambda: logging.getLogger("portico").removeHandler(capture))
    try:
        AccessLog(logger).write(**FIELDS)
    finally:
        for step in undo:
            step()
    if change == "level":
        assert records.made == 0 and stream.getvalue() == ""  # the level says no line
    else:
        assert records.made == 1
    if change in ("capture handler", "parent handler"):
        assert [r.getMessage() for r in seen] == ["request"]
    if change == "plain lines":
        assert "request" in stream.getvalue() and not stream.getvalue().startswith("{")

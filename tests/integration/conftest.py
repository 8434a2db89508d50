"""Fixtures shared by the integration tests."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from services.common.logging import configure_logging


@pytest.fixture
def captured_log(app) -> Iterator[io.StringIO]:
    """The JSON log lines of the test module's ``app`` (a tracking app), as text. After the
    app is made: making it configures logging again."""
    stream = io.StringIO()
    configure_logging("tracking", "INFO", True, stream=stream)
    yield stream
    configure_logging("tracking", "INFO", True)


@pytest.fixture
def client(app):
    """A test client of the test module's ``app``."""
    return app.test_client()

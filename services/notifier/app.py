"""The notifier service's app factory (gunicorn: `services.notifier.app:create_app()`)."""

from __future__ import annotations

import threading
import time
from typing import Any

from flask import Flask, Response, jsonify

from services.common.app import context, create_service_app
from services.common.auth import init_auth
from services.common.config import load_or_exit
from services.common.powers import checks_from_settings, init_powers

from .api import init_api
from .settings import NotifierSettings
from .smtp import probe


class SmtpHealth:
    """SMTP reachability for ``/readyz``, probed at most every ``ttl`` seconds."""

    def __init__(self, settings: NotifierSettings, ttl: float = 10.0) -> None:
        self.settings = settings
        self.ttl = ttl
        self._checked_at = float("-inf")
        self._reachable = False
        self._lock = threading.Lock()

    def __call__(self) -> bool:
        with self._lock:
            if time.monotonic() - self._checked_at >= self.ttl:
                self._reachable = probe(self.settings, timeout=1.0)
                self._checked_at = time.monotonic()
            return self._reachable


def _install_readiness(app: Flask, smtp: SmtpHealth) -> None:
    """``/readyz`` with SMTP in its detail, without letting SMTP decide readiness.

    An unreachable SMTP server does not make the notifier unready: messages wait
    safely in the queue and are retried, and taking the admin API out of the load
    balancer would hide the backlog from the help desk exactly when it grows.
    """

    def readyz() -> tuple[Response, int]:
        checks = {name: bool(check()) for name, check in context().readiness_checks.items()}
        ready = all(checks.values())
        s = context().settings
        body = {"status": "ready" if ready else "unavailable", "checks": checks,
                "detail": {"smtp": {"reachable": smtp(), "host": s.smtp_host, "port": s.smtp_port,
                                    "gates_readiness": False}}}
        return jsonify(body), (200 if ready else 503)

    app.view_functions["readyz"] = readyz


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    settings = load_or_exit(NotifierSettings, **(overrides or {}))
    app = create_service_app("notifier", settings)
    init_auth(app, "notifier")
    init_powers(app, checks_from_settings(settings))
    init_api(app)
    _install_readiness(app, SmtpHealth(settings))
    return app

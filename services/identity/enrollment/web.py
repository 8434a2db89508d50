"""What the pages and the API share: configuration, the actor, rate limits."""

from __future__ import annotations

from flask import current_app, request

from services.common.app import context, request_id
from services.common.auth import current_claims
from services.identity.ratelimit import limit_request

from .audit import Actor
from .config import EnrollmentConfig


def cfg() -> EnrollmentConfig:
    """The enrollment configuration the app was created with."""
    return current_app.extensions["enrollment"].config


def client_ip() -> str:
    return request.remote_addr or "-"


def anonymous() -> Actor:
    return Actor("anonymous", None, client_ip(), request_id())


def helpdesk() -> Actor:
    return Actor("helpdesk", str(current_claims().get("sub")), client_ip(), request_id())


def limit(scope: str, ip_rule: str, target_rule: str | None = None,
          target: str | None = None) -> None:
    """Count this request per client IP and, when given, per target (the rules are
    settings' names)."""
    settings = context().settings
    limit_request(scope, getattr(settings, ip_rule),
                  getattr(settings, target_rule) if target_rule else None, target)

"""What the pages and the API share: configuration, the actor, rate limits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app, request

from services.common.app import context, request_id
from services.common.auth import current_claims
from services.identity.api.common import counted_first, text_in
from services.identity.audit import Actor
from services.identity.i18n import _
from services.identity.ratelimit import limit_request

from .activation import Credentials
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


def credentials_from(data: dict[str, Any]) -> Credentials:
    """What :class:`.schemas.CredentialsSchema` loaded, as the use case takes it."""
    return Credentials(
        username=data["username"], password=data["password"],
        security_answers=[(q["question"], q["answer"]) for q in data["security_questions"]])


def limited(scope: str, ip_rule: str, target_rule: str, target: str,
            key: Callable[[str | None], str | None] = lambda typed: typed) -> Callable[[Any], Any]:
    """An API view whose requests are counted with :func:`limit` before their body is
    validated: per client IP, and per the body's ``target`` field (as ``key`` reads it)."""
    return counted_first(
        lambda body: limit(scope, ip_rule, target_rule, key(text_in(body, target))), _)

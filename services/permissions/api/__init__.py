"""The HTTP layer: flask-smorest blueprints that parse (marshmallow), call a use case
and render. Errors, the use cases' refusals included, stay the kernel's
application/problem+json (:mod:`services.common.api`, :mod:`services.common.app`)."""

from __future__ import annotations

from flask import Flask

from services.common.api import ProblemApi
from services.common.api import init_api as init_kernel_api


def init_api(app: Flask) -> ProblemApi:
    from . import access_requests, admin, checks, memberships, users

    api = init_kernel_api(
        app, title="Portico permissions", version="1", description=(
            "Entitlements, principal administrators, access requests, checks and the "
            "home page. Every error is application/problem+json (RFC 9457)."),
        blueprints=tuple(m.blp for m in (checks, access_requests, memberships, users, admin)))
    api.spec.options["security"] = [{"bearerAuth": []}]
    return api

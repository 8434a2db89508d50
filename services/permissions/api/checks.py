"""``POST /v1/check`` and ``/v1/check/batch``: the hot path. No database session is
opened when the subject's snapshot is cached; the caller is authorised from its token
alone (scope ``permissions.check`` or ``permissions.read``, or asking about itself).

A warm check costs one Redis round trip: the subjects' version keys and the caller's
deny-list entry in one MGET (``require_auth(defer_revocation=True)``). Bodies are read
by :mod:`check_parsing`, not by flask-smorest's per-request wrappers; the
``blp.arguments``/``blp.response`` decorators only document the views (see
:func:`services.common.openapi.documented`).
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, jsonify, request

from services.common.auth import (
    current_claims,
    require_auth,
    revocation_key,
    settle_revocation,
    token_scopes,
)
from services.common.openapi import documented

from ..checks import decide_many
from ..domain import Forbidden, Invalid
from . import schemas
from .check_parsing import RESULT, load_batch, load_check
from .common import Blueprint, now, settings

blp = Blueprint("checks", __name__, url_prefix="/v1/check",
                description="Allow or deny, with the reason.")

CHECK_SCOPES = {"permissions.check", "permissions.read", "permissions.admin"}


def _authorise(subjects: set[str]) -> None:
    claims = current_claims()
    if token_scopes(claims) & CHECK_SCOPES:
        return
    if subjects != {claims.get("sub")}:
        raise Forbidden("A user may only check their own permissions; services need the "
                        "permissions.check scope.")


def _decide_all(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cache = current_app.extensions["permissions.snapshots"]
    subjects = list(dict.fromkeys(c["subject"] for c in checks))
    deny_key = revocation_key()
    versions, extra = cache.versions(subjects, (deny_key,) if deny_key else ())
    settle_revocation(extra[0] if extra else None, unavailable=versions is None)
    snapshots = cache.snapshots(subjects, versions)
    return [{"allowed": d.allowed, "reason": d.reason}
            for d in decide_many(snapshots, checks, now())]


@blp.post("")
@documented(blp.arguments(schemas.Check), blp.response(200, schemas.CheckResult))
@require_auth(defer_revocation=True)
def check() -> Response:
    """May ``subject`` do ``action`` (an entitlement key) on ``resource``?"""
    body = load_check(request)
    _authorise({body["subject"]})
    return jsonify(RESULT.dump(_decide_all([body])[0]))


@blp.post("/batch")
@documented(blp.arguments(schemas.CheckBatch), blp.response(200, schemas.CheckBatchResult))
@require_auth(defer_revocation=True)
def check_batch() -> Response:
    """Up to PERMISSIONS_CHECK_BATCH_MAX checks, answered in order."""
    checks = load_batch(request)
    if len(checks) > settings().check_batch_max:
        raise Invalid({"checks": [f"At most {settings().check_batch_max} checks per call."]})
    _authorise({c["subject"] for c in checks})
    # Each result is the {allowed: bool, reason: str} that schemas.CheckResult documents.
    return jsonify({"results": _decide_all(checks)})

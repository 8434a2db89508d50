"""``POST /v1/check`` and ``/v1/check/batch``: the hot path. No database session is
opened when the subject's snapshot is cached; the caller is authorised from its token
alone (scope ``permissions.check`` or ``permissions.read``, or asking about itself)."""

from __future__ import annotations

from typing import Any

from flask import current_app

from services.common.auth import current_claims, require_auth, token_scopes

from ..checks import decide
from ..domain import Forbidden, Invalid
from . import schemas
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
    snapshots = current_app.extensions["permissions.snapshots"].get_many(
        [c["subject"] for c in checks])
    moment = now()
    results = []
    for check in checks:
        decision = decide(snapshots[check["subject"]], check["action"], check.get("resource"),
                          moment)
        results.append({"allowed": decision.allowed, "reason": decision.reason})
    return results


@blp.post("")
@require_auth()
@blp.arguments(schemas.Check)
@blp.response(200, schemas.CheckResult)
def check(body: dict[str, Any]) -> dict[str, Any]:
    """May ``subject`` do ``action`` (an entitlement key) on ``resource``?"""
    _authorise({body["subject"]})
    return _decide_all([body])[0]


@blp.post("/batch")
@require_auth()
@blp.arguments(schemas.CheckBatch)
@blp.response(200, schemas.CheckBatchResult)
def check_batch(body: dict[str, Any]) -> dict[str, Any]:
    """Up to PERMISSIONS_CHECK_BATCH_MAX checks, answered in order."""
    checks = body["checks"]
    if len(checks) > settings().check_batch_max:
        raise Invalid({"checks": [f"At most {settings().check_batch_max} checks per call."]})
    _authorise({c["subject"] for c in checks})
    return {"results": _decide_all(checks)}

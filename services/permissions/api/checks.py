"""``POST /v1/check`` and ``/v1/check/batch``: the hot path. No database session is
opened when the subject's snapshot is cached; the caller is authorised from its token
alone (scope ``permissions.check`` or ``permissions.read``, or asking about itself).

An entitlement that requires an authentication level is answered ``{"allowed": false,
"reason": "step_up_required", "acr": <level>}`` when the level counted for the subject
is lower: the caller's own ``acr`` when it asks about itself, or that of a
``subject_token`` a service forwards (:mod:`subject_levels` says which, and why).

A check reads the subjects' version keys and the caller's deny-list entry together
(``require_auth(defer_revocation=True)``), through the cache's watched keys: no Redis
round trip when they are held, one MGET for those that are not. Bodies are read
by :mod:`check_parsing`, not by flask-smorest's per-request wrappers; the
``blp.arguments``/``blp.response`` decorators only document the views (see
:func:`services.common.api.documented`).

Below Flask, :func:`init_fast_checks` answers the common case of both routes (a
well-formed body, a caller allowed to ask, Redis answering, the token not revoked)
without Flask's per-request machinery (:mod:`services.common.fastpath`); the views
here answer every other request, every error included.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Flask, Response, current_app, jsonify, request

from services.common.api import Blueprint, documented
from services.common.app import context
from services.common.auth import (
    current_claims,
    fast_route_claims,
    require_auth,
    revocation_key,
    settle_revocation,
    token_scopes,
)
from services.common.domain_errors import Forbidden, Invalid
from services.common.fastpath import FastAnswer, FastRequest, json_answer

from .. import scopes
from ..cache import SNAPSHOTS, SnapshotCache
from ..checks import Decision, decide_many
from . import schemas
from .check_parsing import fast_batch, fast_check, load_batch, load_check
from .common import now, settings
from .subject_levels import subject_levels

blp = Blueprint("checks", __name__, url_prefix="/v1/check",
                description="Allow or deny, with the reason.")

CHECK_SCOPES = {scopes.CHECK, scopes.READ, scopes.ADMIN}


def _may_check(claims: dict[str, Any], subjects: set[str]) -> bool:
    return bool(token_scopes(claims) & CHECK_SCOPES) or subjects == {claims.get("sub")}


def _authorise(subjects: set[str]) -> None:
    if not _may_check(current_claims(), subjects):
        raise Forbidden("A user may only check their own permissions; services need the "
                        "permissions.check scope.")


def _subjects(checks: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(c["subject"] for c in checks))


def _answer(decision: Decision) -> dict[str, Any]:
    if decision.acr is None:
        return {"allowed": decision.allowed, "reason": decision.reason}
    return {"allowed": decision.allowed, "reason": decision.reason, "acr": decision.acr}


def _results(cache: SnapshotCache, subjects: list[str], checks: list[dict[str, Any]],
             versions: list[bytes | None] | None, at: datetime,
             levels: list[str | None]) -> list[dict[str, Any]]:
    snapshots = cache.snapshots(subjects, versions)
    return [_answer(d) for d in decide_many(snapshots, checks, at, levels)]


def _decide_all(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cache = current_app.extensions[SNAPSHOTS]
    subjects = _subjects(checks)
    levels = subject_levels(current_app.extensions["portico.auth"], current_claims(), checks)
    deny_key = revocation_key()
    own = (deny_key,) if deny_key else ()
    versions, extra = cache.versions(subjects, (*own, *levels.keys))
    settle_revocation(extra[0] if own and extra else None, unavailable=versions is None)
    return _results(cache, subjects, checks, versions, now(),
                    levels.settle(None if extra is None else extra[len(own):]))


@blp.post("")
@documented(blp.arguments(schemas.Check), blp.response(200, schemas.CheckResult))
@require_auth(defer_revocation=True)
def check() -> Response:
    """May ``subject`` do ``action`` (an entitlement key) on ``resource``?

    An entitlement that requires an authentication level (the catalog's
    ``required_acr``) is ``step_up_required`` with that ``acr`` when the level counted for
    the subject is lower. The level is only ever read from a token Portico signed: the
    caller's own when it asks about itself, else the ``subject_token`` a service forwards
    (verified; one that does not verify counts for nothing); a service that sends none
    gets ``step_up_required`` for such an entitlement."""
    body = load_check(request)
    _authorise({body["subject"]})
    # The {allowed, reason[, acr]} that schemas.CheckResult documents.
    return jsonify(_decide_all([body])[0])


@blp.post("/batch")
@documented(blp.arguments(schemas.CheckBatch), blp.response(200, schemas.CheckBatchResult))
@require_auth(defer_revocation=True)
def check_batch() -> Response:
    """Up to PERMISSIONS_CHECK_BATCH_MAX checks, answered in order."""
    checks = load_batch(request)
    if len(checks) > settings().check_batch_max:
        raise Invalid({"checks": [f"At most {settings().check_batch_max} checks per call."]})
    _authorise({c["subject"] for c in checks})
    # Each result is the {allowed, reason[, acr]} that schemas.CheckResult documents.
    return jsonify({"results": _decide_all(checks)})


def init_fast_checks(app: Flask) -> None:
    """Answer the warm, authorised, well-formed check below Flask; anything else (a bad
    body, no or an invalid token, a caller who may not ask, Redis not answering, a
    revoked token) is left to the views above, which answer it as they always have."""
    verifier = app.extensions["portico.auth"]
    cache: SnapshotCache = app.extensions[SNAPSHOTS]
    batch_max = context(app).settings.check_batch_max

    def decided(request: FastRequest, checks: list[dict[str, Any]]
                ) -> list[dict[str, Any]] | None:
        found = fast_route_claims(verifier, request.header("Authorization"))
        if found is None:
            return None
        claims, deny_key = found
        subjects = _subjects(checks)
        if not _may_check(claims, set(subjects)):
            return None
        levels = subject_levels(verifier, claims, checks)
        own = (deny_key,) if deny_key else ()
        versions, extra = cache.versions(subjects, (*own, *levels.keys))
        if versions is None or extra is None or (own and extra[0]):
            return None
        return _results(cache, subjects, checks, versions, now(app),
                        levels.settle(extra[len(own):]))

    def check(request: FastRequest) -> FastAnswer | None:
        body = fast_check(request.json())
        results = decided(request, [body]) if body else None
        return json_answer(results[0]) if results else None

    def check_batch(request: FastRequest) -> FastAnswer | None:
        checks = fast_batch(request.json())
        if not checks or len(checks) > batch_max:
            return None
        results = decided(request, checks)
        return json_answer({"results": results}) if results else None

    routes = context(app).fast_routes
    routes.add("POST", "/v1/check", check)
    routes.add("POST", "/v1/check/batch", check_batch)

"""A user's entitlements (identity builds the ``entitlements`` claim from it), their
home page, and the catalog."""

from __future__ import annotations

from typing import Any

from flask import request

from services.common.api import Blueprint
from services.common.auth import require_auth

from .. import grants as use_cases
from .. import scopes as permission_scopes
from . import schemas
from .common import actor, now, scopes, unit_of_work

blp = Blueprint("users", __name__, url_prefix="/v1", description="Entitlements and home page.")


@blp.get("/users/<user_id>/entitlements")
@require_auth()
@blp.response(200, schemas.EntitlementsOut)
def entitlements(user_id: str) -> dict[str, Any]:
    """Live grants with their account limits. Callers: a client token with scope
    ``permissions.read``, the user, an administrator of their company or the help desk."""
    with unit_of_work() as session:
        return use_cases.user_entitlements(
            session, user_id=user_id, actor=actor(session), now=now(),
            trusted_client=permission_scopes.READ in scopes())


@blp.get("/users/<user_id>/home")
@require_auth()
@blp.arguments(schemas.HomeQuery, location="query")
@blp.response(200, schemas.HomeOut)
def home(query: dict[str, Any], user_id: str) -> dict[str, Any]:
    """Home-page sections in ``?lang=``, else Accept-Language, else the user's language."""
    language = query.get("lang")
    if language is None and request.headers.get("Accept-Language"):
        language = request.accept_languages.best_match(["en", "es"])
    with unit_of_work() as session:
        return use_cases.home_page(session, user_id=user_id, actor=actor(session),
                                   language=language, now=now())


@blp.get("/entitlements")
@require_auth()
@blp.response(200, schemas.CatalogOut)
def catalog() -> dict[str, Any]:
    """The entitlement catalog."""
    with unit_of_work() as session:
        return {"items": use_cases.catalog(session)}

"""Clients admin API (``/admin/v1/clients``): bearer token with scope ``iam.admin``.

A client's rows are dumped after the unit of work (a transaction: its commit leaves
them loaded, where a read session's rollback would expire them).
"""

from __future__ import annotations

from typing import Any

from flask import Response

from services.common.app import context
from services.common.auth import require_auth

from .. import clients
from ..clients import ClientSpec
from ..schemas import ClientCreated, ClientList, ClientOut, ClientSchema, SecretRotated
from ..scopes import ADMIN
from .common import BEARER, CLIENTS, NO_STORE, NO_STORE_DOC, Blueprint

blp = Blueprint("clients_api", __name__, url_prefix="/admin/v1/clients", tag=CLIENTS)


@blp.post("")
@require_auth(ADMIN)
@blp.arguments(ClientSchema)
@blp.response(201, ClientCreated, headers=NO_STORE_DOC)
@blp.problems(400, 401, 403)
@blp.doc(security=BEARER)
def create(spec: ClientSpec) -> Any:
    """Register a client; the secret is shown only in this answer."""
    ctx = context()
    with ctx.db.transaction() as session:
        registered = clients.create_client(session, ctx.settings.client_secret_pepper, spec)
    return registered, 201, NO_STORE


@blp.get("")
@require_auth(ADMIN)
@blp.response(200, ClientList)
@blp.problems(401, 403)
@blp.doc(security=BEARER)
def list_all() -> dict[str, Any]:
    """Every registered client."""
    with context().db.transaction() as session:
        return {"items": clients.list_clients(session)}


@blp.get("/<client_id>")
@require_auth(ADMIN)
@blp.response(200, ClientOut)
@blp.problems(401, 403, 404)
@blp.doc(security=BEARER)
def read(client_id: str) -> Any:
    """One client."""
    with context().db.transaction() as session:
        return clients.get_client(session, client_id)


@blp.put("/<client_id>")
@require_auth(ADMIN)
@blp.arguments(ClientSchema)
@blp.response(200, ClientCreated, headers=NO_STORE_DOC)
@blp.problems(400, 401, 403, 404)
@blp.doc(security=BEARER)
def update(spec: ClientSpec, client_id: str) -> Any:
    """Replace a client's registration (a new secret when it becomes confidential)."""
    ctx = context()
    with ctx.db.transaction() as session:
        updated = clients.update_client(session, ctx.settings.client_secret_pepper,
                                        client_id, spec)
    return updated, NO_STORE


@blp.delete("/<client_id>")
@require_auth(ADMIN)
@blp.response(204)
@blp.problems(401, 403, 404)
@blp.doc(security=BEARER)
def remove(client_id: str) -> Response:
    """Delete a client."""
    with context().db.transaction() as session:
        clients.delete_client(session, client_id)
    return Response(status=204)


@blp.post("/<client_id>/disable")
@require_auth(ADMIN)
@blp.response(200, ClientOut)
@blp.problems(401, 403, 404)
@blp.doc(security=BEARER)
def disable(client_id: str) -> Any:
    """Disable a client: no new tokens, and every token issued to it revoked at once."""
    with context().db.transaction() as session:
        return clients.disable_client(session, client_id)


@blp.post("/<client_id>/enable")
@require_auth(ADMIN)
@blp.response(200, ClientOut)
@blp.problems(401, 403, 404)
@blp.doc(security=BEARER)
def enable(client_id: str) -> Any:
    """Enable a disabled client (its revoked tokens stay revoked)."""
    with context().db.transaction() as session:
        return clients.enable_client(session, client_id)


@blp.post("/<client_id>/secret")
@require_auth(ADMIN)
@blp.response(200, SecretRotated, headers=NO_STORE_DOC)
@blp.problems(401, 403, 404, 409)
@blp.doc(security=BEARER)
def rotate_secret(client_id: str) -> Any:
    """Rotate a confidential client's secret."""
    ctx = context()
    with ctx.db.transaction() as session:
        client, secret = clients.rotate_secret(session, ctx.settings.client_secret_pepper,
                                               client_id)
    return {"client_id": client.client_id, "client_secret": secret}, NO_STORE

"""Clients admin API (``/admin/v1/clients``): bearer token with scope ``iam.admin``."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from services.common.app import context
from services.common.auth import require_auth
from services.common.errors import Problem

from .. import clients
from ..schemas import ClientSchema, client_json
from ..scopes import ADMIN

bp = Blueprint("clients_api", __name__, url_prefix="/admin/v1/clients")

def _body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise Problem(400, "bad-request", "The body must be a JSON object.")
    return body


@bp.post("")
@require_auth(ADMIN)
def create():
    spec = ClientSchema().load(_body())
    ctx = context()
    with ctx.db.transaction() as session:
        client, secret = clients.create_client(session, ctx.settings.client_secret_pepper, spec)
        body = client_json(client, secret)
    response = jsonify(body)
    response.status_code = 201
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("")
@require_auth(ADMIN)
def list_all():
    with context().db.read() as session:
        items = [client_json(c) for c in clients.list_clients(session)]
    return jsonify(items=items)


@bp.get("/<client_id>")
@require_auth(ADMIN)
def read(client_id: str):
    with context().db.read() as session:
        return jsonify(client_json(clients.get_client(session, client_id)))


@bp.put("/<client_id>")
@require_auth(ADMIN)
def update(client_id: str):
    spec = ClientSchema().load(_body())
    ctx = context()
    with ctx.db.transaction() as session:
        client, secret = clients.update_client(session, ctx.settings.client_secret_pepper,
                                               client_id, spec)
        body = client_json(client, secret)
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.delete("/<client_id>")
@require_auth(ADMIN)
def remove(client_id: str):
    with context().db.transaction() as session:
        clients.delete_client(session, client_id)
    return "", 204


@bp.post("/<client_id>/disable")
@require_auth(ADMIN)
def disable(client_id: str):
    """Disable the client and revoke every token issued to it."""
    with context().db.transaction() as session:
        return jsonify(client_json(clients.disable_client(session, client_id)))


@bp.post("/<client_id>/enable")
@require_auth(ADMIN)
def enable(client_id: str):
    with context().db.transaction() as session:
        return jsonify(client_json(clients.enable_client(session, client_id)))


@bp.post("/<client_id>/secret")
@require_auth(ADMIN)
def rotate_secret(client_id: str):
    ctx = context()
    with ctx.db.transaction() as session:
        client, secret = clients.rotate_secret(session, ctx.settings.client_secret_pepper,
                                               client_id)
        body = {"client_id": client.client_id, "client_secret": secret}
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response

"""``iamctl`` commands of the identity service: bootstrap, clients, users, keys, tokens.

They read the same settings as the service (``load_or_exit(IdentitySettings)``), print
one JSON object, and change nothing beyond what they are asked.
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
import sys
from datetime import timedelta

import click
import redis
from cryptography.fernet import Fernet
from sqlalchemy import inspect

from services.common.config import load_or_exit
from services.common.db import Database, service_database
from services.common.domain_errors import DomainError
from services.common.events import Envelope, record_event

from . import acr, scopes
from . import clients as client_cases
from .clients import watch_client_changes
from .lifecycle.cli import commands as lifecycle_commands
from .models import OutboxEvent
from .oidc import keys
from .oidc.models import OAuthClient
from .oidc.purge import DEFAULT_GRACE, purge_spent_records
from .schemas import ClientSchema, client_json
from .service import NewUser, create_user
from .settings import IdentitySettings
from .tables import identity_metadata


def _open() -> tuple[IdentitySettings, Database]:
    settings = load_or_exit(IdentitySettings)
    db = service_database(settings)
    # Client changes made here must invalidate every running replica's client cache too.
    watch_client_changes(db.sessions, redis.Redis.from_url(settings.redis_url),
                         settings.redis_namespace, settings.max_token_lifetime)
    missing = set(identity_metadata().tables) - set(inspect(db.engine).get_table_names())
    if missing:
        click.echo("error: the identity database is not migrated; run `iamctl migrate identity`",
                   err=True)
        sys.exit(1)
    return settings, db


def _fail(refusal: DomainError) -> None:
    detail = refusal.detail
    if refusal.errors:
        detail += " " + "; ".join(f"{k}: {' '.join(v)}" for k, v in refusal.errors.items())
    click.echo(f"error: {detail}", err=True)
    sys.exit(1)


def _emit(body: dict) -> None:
    click.echo(json.dumps(body, indent=2, default=str))


@click.group("clients")
def clients_group() -> None:
    """OIDC client registration."""


@clients_group.command("create")
@click.option("--name", required=True)
@click.option("--redirect-uri", "redirect_uris", multiple=True)
@click.option("--post-logout-redirect-uri", "post_logout_redirect_uris", multiple=True)
@click.option("--grant", "grants", multiple=True,
              type=click.Choice(client_cases.GRANT_TYPES))
@click.option("--scope", default="openid profile email")
@click.option("--public", is_flag=True, help="a public client (no secret, PKCE required)")
@click.option("--first-party", is_flag=True, help="skip the consent page")
@click.option("--auth-method", type=click.Choice(client_cases.AUTH_METHODS), default=None)
@click.option("--audience", "audiences", multiple=True, help="allowed token audience (repeatable)")
@click.option("--backchannel-logout-uri", default=None,
              help="where to POST a logout token when a user's login session ends")
@click.option("--client-id", default=None,
              help="the client's id (default: random); a resource server that introspects "
                   "tokens meant for it takes its audience as id")
@click.option("--default-acr", "default_acr_values", multiple=True,
              type=click.Choice(acr.LEVELS),
              help="an acr level asked when a request names none (repeatable, most "
                   "preferred first)")
def clients_create(name, redirect_uris, post_logout_redirect_uris, grants, scope, public,
                   first_party, auth_method, audiences, backchannel_logout_uri,
                   client_id, default_acr_values) -> None:
    """Register a client and print it (with its secret, shown once) as JSON."""
    if client_id is not None and not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", client_id):
        click.echo("error: --client-id takes 1 to 64 letters, digits, '.', '_' or '-'",
                   err=True)
        sys.exit(1)
    settings, db = _open()
    method = auth_method or ("none" if public else "client_secret_basic")
    if public and method != "none":
        click.echo("error: a public client authenticates with --auth-method none", err=True)
        sys.exit(1)
    payload = {"name": name, "redirect_uris": list(redirect_uris),
               "post_logout_redirect_uris": list(post_logout_redirect_uris),
               "grant_types": list(grants) or ["authorization_code"], "scope": scope,
               "token_endpoint_auth_method": method, "first_party": first_party,
               "allowed_audiences": list(audiences),
               "backchannel_logout_uri": backchannel_logout_uri,
               "default_acr_values": list(default_acr_values)}
    from marshmallow import ValidationError

    try:
        spec = ClientSchema().load(payload)
        with db.transaction() as session:
            if client_id is not None and session.get(OAuthClient, client_id) is not None:
                click.echo(f"error: a client {client_id} exists already", err=True)
                sys.exit(1)
            client, secret = client_cases.create_client(session, settings.client_secret_pepper,
                                                        spec, client_id)
            body = client_json(client, secret)
    except ValidationError as exc:
        click.echo(f"error: {json.dumps(exc.messages)}", err=True)
        sys.exit(1)
    _emit(body)


@click.group("users")
def users_group() -> None:
    """Users (for tests and demos until enrollment exists)."""


@users_group.command("create")
@click.option("--username", required=True)
@click.option("--password", required=True)
@click.option("--email", required=True)
@click.option("--given-name", required=True)
@click.option("--family-name", required=True)
@click.option("--company-id", default=None)
def users_create(username, password, email, given_name, family_name, company_id) -> None:
    """Create an active user (same password policy as every other path) and print it."""
    _, db = _open()
    try:
        with db.transaction() as session:
            user = create_user(session, NewUser(username=username, password=password,
                                                email=email, given_name=given_name,
                                                family_name=family_name, company_id=company_id))
            body = {"id": user.id, "username": user.username, "email": user.email,
                    "company_id": user.company_id}
    except DomainError as refusal:
        _fail(refusal)
    _emit(body)


@click.group("keys")
def keys_group() -> None:
    """Token-signing keys."""


@keys_group.command("rotate")
def keys_rotate() -> None:
    """Publish new signing keys now; they sign after KEY_ACTIVATION_DELAY seconds, and the
    old ones stay published MAX_TOKEN_LIFETIME seconds longer."""
    settings, db = _open()
    with db.transaction() as session:
        purged = keys.purge_retired(session)
        created = keys.ensure_keys(session, Fernet(settings.key_encryption_key))
        report = [] if created else keys.rotate_keys(
            session, Fernet(settings.key_encryption_key), settings.key_activation_delay,
            settings.max_token_lifetime)
    _emit({"created": created, "rotated": report, "purged": purged})


@click.group("tokens")
def tokens_group() -> None:
    """Codes and tokens the provider has issued."""


@tokens_group.command("purge")
@click.option("--grace-hours", default=int(DEFAULT_GRACE.total_seconds() // 3600),
              show_default=True, type=click.IntRange(0, 24 * 365),
              help="keep spent records this much longer")
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(1, 10000))
def tokens_purge(grace_hours: int, batch_size: int) -> None:
    """Delete spent authorization codes, refresh-token families, access-token records and
    settled back-channel logouts (run it hourly; services/identity/oidc/purge.py says what
    is kept). Prints the counts as JSON."""
    _, db = _open()
    report = purge_spent_records(db, grace=timedelta(hours=grace_hours), batch_size=batch_size)
    _emit(dataclasses.asdict(report))


def staff_activated(session, user) -> None:
    """Tell the other services about a person of no company (the bootstrap help-desk
    administrator), so that permissions' read model knows them: their platform roles are
    granted there (``iamctl platform grant``), never here."""
    record_event(session, OutboxEvent, Envelope.new(
        "identity.user.activated", "identity", {
            "user_id": user.id, "email": user.email, "given_name": user.given_name,
            "family_name": user.family_name, "preferred_language": user.preferred_language,
            "company_id": None, "company_name": None, "accounts": [],
            "notifications": {"status_changes": False}}, subject=user.id))


@click.command("bootstrap")
@click.option("--username", default="helpdesk", show_default=True)
@click.option("--email", default="helpdesk@portico.local", show_default=True)
def bootstrap(username: str, email: str) -> None:
    """Create signing keys, the first help-desk administrator and an admin client; print
    their credentials once as JSON. The administrator's platform roles are granted in
    permissions: ``iamctl platform grant <id> platform_admin`` (``make run`` does it)."""
    settings, db = _open()
    password = secrets.token_urlsafe(18)
    try:
        with db.transaction() as session:
            created_keys = keys.ensure_keys(session, Fernet(settings.key_encryption_key))
            user = create_user(session, NewUser(username=username, password=password,
                                                email=email, given_name="Help",
                                                family_name="Desk"))
            staff_activated(session, user)
            spec = ClientSchema().load({
                "name": "Portico administration", "grant_types": ["client_credentials"],
                "scope": scopes.ADMIN, "token_endpoint_auth_method": "client_secret_basic",
                "first_party": True, "allowed_audiences": [settings.admin_audience]})
            client, secret = client_cases.create_client(session, settings.client_secret_pepper,
                                                        spec)
            body = {"administrator": {"id": user.id, "username": user.username,
                                      "password": password},
                    "admin_client": {"client_id": client.client_id, "client_secret": secret,
                                     "scope": client.scope,
                                     "audience": settings.admin_audience},
                    "signing_keys": created_keys}
    except DomainError as refusal:
        _fail(refusal)
    _emit(body)


commands = [bootstrap, clients_group, users_group, keys_group, tokens_group,
            *lifecycle_commands]

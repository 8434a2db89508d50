"""marshmallow schemas of the identity service's JSON API."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlparse

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from . import acr
from .clients import AUTH_METHODS, GRANT_TYPES, ClientSpec

LOOPBACK_HOSTS = {"localhost"}


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def validate_redirect_uri(value: str) -> None:
    """Absolute, no fragment, no user information; plain http only for loopback hosts."""
    parsed = urlparse(value)
    if not parsed.scheme or not parsed.netloc:
        raise ValidationError("Must be an absolute URI.")
    if parsed.fragment or "#" in value:
        raise ValidationError("Must not contain a fragment.")
    # RFC 9110 §4.2.4: an http(s) URI sent as a field value (here, Location) must not carry
    # userinfo; "https://portal.example.com@evil.example/" reads as one host and is another.
    if "@" in parsed.netloc:
        raise ValidationError("Must not contain user information (user@ or user:password@).")
    if parsed.scheme == "http" and not _is_loopback(parsed.hostname or ""):
        raise ValidationError("http is allowed only for loopback hosts; use https.")
    if parsed.scheme not in ("http", "https"):
        raise ValidationError("Must use https (or http on a loopback host).")


RedirectUri = fields.String(validate=[validate.Length(max=2000), validate_redirect_uri])


class ClientSchema(Schema):
    """A client as registered (input) — the secret is never part of it."""

    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    redirect_uris = fields.List(fields.String(validate=[validate.Length(max=2000),
                                                        validate_redirect_uri]),
                                load_default=list, validate=validate.Length(max=20))
    post_logout_redirect_uris = fields.List(
        fields.String(validate=[validate.Length(max=2000), validate_redirect_uri]),
        load_default=list, validate=validate.Length(max=20))
    grant_types = fields.List(fields.String(validate=validate.OneOf(GRANT_TYPES)),
                              load_default=lambda: ["authorization_code"],
                              validate=validate.Length(min=1))
    scope = fields.String(load_default="openid", validate=validate.Length(max=1000))
    token_endpoint_auth_method = fields.String(load_default="client_secret_basic",
                                               validate=validate.OneOf(AUTH_METHODS))
    first_party = fields.Boolean(load_default=False)
    allowed_audiences = fields.List(fields.String(validate=validate.Length(min=1, max=200)),
                                    load_default=list)
    jwks = fields.Dict(load_default=None, allow_none=True)
    id_token_signed_response_alg = fields.String(load_default=None, allow_none=True,
                                                 validate=validate.OneOf(["ES256", "RS256"]))
    access_token_ttl = fields.Integer(load_default=None, allow_none=True,
                                      validate=validate.Range(min=60, max=3600))
    id_token_ttl = fields.Integer(load_default=None, allow_none=True,
                                  validate=validate.Range(min=60, max=3600))
    refresh_token_ttl = fields.Integer(load_default=None, allow_none=True,
                                       validate=validate.Range(min=300, max=90 * 86400))
    backchannel_logout_uri = fields.String(load_default=None, allow_none=True,
                                           validate=validate_redirect_uri)
    default_acr_values = fields.List(
        fields.String(validate=validate.OneOf(acr.LEVELS)), load_default=list,
        validate=validate.Length(max=len(acr.LEVELS)),
        metadata={"description": "The acr levels asked, in order of preference, when an "
                                 "authorization request names none (discovery's "
                                 "acr_values_supported)."})

    @validates_schema
    def _coherent(self, data, **kwargs):
        grants = set(data.get("grant_types") or [])
        method = data.get("token_endpoint_auth_method")
        errors: dict[str, list[str]] = {}
        if "authorization_code" in grants and not data.get("redirect_uris"):
            errors["redirect_uris"] = ["At least one redirect URI is needed for the code flow."]
        if method == "none" and "client_credentials" in grants:
            errors["grant_types"] = ["A public client cannot use client_credentials."]
        if method == "private_key_jwt" and not (data.get("jwks") or {}).get("keys"):
            errors["jwks"] = ["private_key_jwt needs the client's public JWKS."]
        if data.get("jwks") and any(k in m for m in data["jwks"].get("keys", [])
                                    for k in ("d", "p", "q", "k")):
            errors["jwks"] = ["Register public keys only."]
        if "refresh_token" in grants and "authorization_code" not in grants:
            errors["grant_types"] = ["refresh_token needs authorization_code."]
        if errors:
            raise ValidationError(errors)

    @post_load
    def _spec(self, data, **kwargs) -> ClientSpec:
        return ClientSpec(**data)


class ClientOut(Schema):
    client_id = fields.String()
    name = fields.String()
    redirect_uris = fields.List(fields.String())
    post_logout_redirect_uris = fields.List(fields.String())
    grant_types = fields.List(fields.String())
    scope = fields.String()
    token_endpoint_auth_method = fields.String()
    first_party = fields.Boolean()
    public = fields.Boolean()
    allowed_audiences = fields.List(fields.String())
    jwks = fields.Dict(allow_none=True)
    id_token_signed_response_alg = fields.String(allow_none=True)
    access_token_ttl = fields.Integer(allow_none=True)
    id_token_ttl = fields.Integer(allow_none=True)
    refresh_token_ttl = fields.Integer(allow_none=True)
    backchannel_logout_uri = fields.String(allow_none=True)
    default_acr_values = fields.List(fields.String())
    disabled_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class ClientCreated(ClientOut):
    """A client as registered with the secret just issued to it, dumped from the pair
    ``(client, secret)``: the only answer that shows the secret (none for public clients)."""

    client_secret = fields.String(metadata={"description": "Shown once; absent for public "
                                                          "clients."})

    def get_attribute(self, obj: tuple, attr: str, default: Any) -> Any:
        client, secret = obj
        if attr == "client_secret":
            return secret or default
        return super().get_attribute(client, attr, default)


class ClientList(Schema):
    items = fields.List(fields.Nested(ClientOut), required=True)


class SecretRotated(Schema):
    client_id = fields.String(required=True)
    client_secret = fields.String(required=True)


def client_json(client, secret: str | None = None) -> dict:
    return ClientCreated().dump((client, secret))

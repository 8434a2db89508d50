"""The OAuth 2.0 / OIDC endpoints in identity's OpenAPI document.

They are served by Flask views (views/oauth.py) and, for the common token and
introspection requests, by the fast route below Flask (oidc/fast.py); their bodies are
form-encoded and their errors are RFC 6749 §5.2 / RFC 6750 bodies (``{"error",
"error_description"}``), not problem+json. So they are described here, path by path,
rather than by flask-smorest decorators on the views.
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from marshmallow import Schema, fields, validate
from werkzeug.routing import Map

from ..clients import GRANT_TYPES
from .common import BEARER, NO_STORE_DOC, OAUTH


class OAuthErrorSchema(Schema):
    """RFC 6749 §5.2 error body (also RFC 6750 §3 for userinfo and RFC 7009/7662)."""

    error = fields.String(required=True)
    error_description = fields.String()
    error_uri = fields.String()
    state = fields.String()


class TokenRequestSchema(Schema):
    """``POST /token`` (RFC 6749 §4.1.3, §4.4, §6; PKCE RFC 7636; resource RFC 8707)."""

    grant_type = fields.String(required=True, validate=validate.OneOf(GRANT_TYPES))
    code = fields.String()
    redirect_uri = fields.String()
    code_verifier = fields.String()
    refresh_token = fields.String()
    scope = fields.String()
    resource = fields.String()
    audience = fields.String()
    client_id = fields.String(metadata={"description": "client_secret_post / public clients"})
    client_secret = fields.String()
    client_assertion_type = fields.String(metadata={"description": "private_key_jwt"})
    client_assertion = fields.String()


class TokenResponseSchema(Schema):
    access_token = fields.String(required=True)
    token_type = fields.String(required=True)
    expires_in = fields.Integer(required=True)
    scope = fields.String()
    refresh_token = fields.String()
    id_token = fields.String()


class TokenHintSchema(Schema):
    """``POST /revoke`` (RFC 7009) and ``POST /introspect`` (RFC 7662)."""

    token = fields.String(required=True)
    token_type_hint = fields.String(validate=validate.OneOf(["access_token", "refresh_token"]))
    client_id = fields.String()
    client_secret = fields.String()
    client_assertion_type = fields.String()
    client_assertion = fields.String()


class IntrospectionSchema(Schema):
    active = fields.Boolean(required=True)
    scope = fields.String()
    client_id = fields.String()
    username = fields.String()
    token_type = fields.String()
    exp = fields.Integer()
    iat = fields.Integer()
    nbf = fields.Integer()
    sub = fields.String()
    aud = fields.Raw(metadata={"description": "a string or a list of strings"})
    iss = fields.String()
    jti = fields.String()


class UserinfoSchema(Schema):
    """OIDC Core §5.3: ``sub`` always; the rest by granted scope."""

    sub = fields.String(required=True)
    name = fields.String()
    given_name = fields.String()
    family_name = fields.String()
    preferred_username = fields.String(allow_none=True)
    locale = fields.String(allow_none=True)
    company_id = fields.String()
    email = fields.String()
    email_verified = fields.Boolean()
    phone_number = fields.String()
    phone_number_verified = fields.Boolean()
    entitlements = fields.List(fields.String())


# Client authentication: HTTP Basic, or the form fields (client_secret_post,
# private_key_jwt, public clients) — hence the empty alternative.
CLIENT_AUTH = [{"clientSecretBasic": []}, {}]
CHALLENGE = {"WWW-Authenticate": {"schema": {"type": "string"}}}
RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}}}
ANY_OBJECT = {"type": "object", "additionalProperties": True}


def _body(schema: Any, media: str = "application/json") -> dict[str, Any]:
    return {"content": {media: {"schema": schema}}}


def _refused(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = {"description": description, **_body(OAuthErrorSchema)}
    return {**answer, "headers": headers} if headers else answer


def _form(schema: type[Schema]) -> dict[str, Any]:
    return {"requestBody": {"required": True,
                            **_body(schema, "application/x-www-form-urlencoded")}}


def _failures() -> dict[str, Any]:
    return {"400": _refused("invalid_request, invalid_grant, unsupported_grant_type, "
                            "invalid_scope, invalid_target…"),
            "401": _refused("invalid_client", CHALLENGE),
            "429": _refused("too_many_requests (see Retry-After)", RETRY_AFTER),
            "503": _refused("temporarily_unavailable (Redis or the database is down; see "
                            "Retry-After)")}


def _operations() -> dict[str, dict[str, Any]]:
    """Each endpoint (views/oauth.py) → its operations."""
    tag = {"tags": [OAUTH]}
    userinfo = {
        **tag, "summary": "OIDC UserInfo: claims by the access token's scopes (`openid`)",
        "security": BEARER,
        "responses": {"200": {"description": "Claims", "headers": NO_STORE_DOC,
                              **_body(UserinfoSchema)},
                      "401": _refused("invalid_token (RFC 6750)", CHALLENGE),
                      "403": _refused("insufficient_scope: `openid` needed", CHALLENGE),
                      "503": _refused("temporarily_unavailable")}}
    return {
        "oauth.token": {"post": {
            **tag, "summary": "Token endpoint: authorization_code (PKCE S256), refresh_token, "
                              "client_credentials", "security": CLIENT_AUTH,
            **_form(TokenRequestSchema),
            "responses": {"200": {"description": "Tokens", "headers": NO_STORE_DOC,
                                  **_body(TokenResponseSchema)}, **_failures()}}},
        "oauth.introspect": {"post": {
            **tag, "summary": "Token introspection (RFC 7662); confidential clients only",
            "security": CLIENT_AUTH, **_form(TokenHintSchema),
            "responses": {"200": {"description": "`active` false for any unknown, expired or "
                                                 "revoked token", "headers": NO_STORE_DOC,
                                  **_body(IntrospectionSchema)}, **_failures()}}},
        "oauth.revoke": {"post": {
            **tag, "summary": "Token revocation (RFC 7009); a refresh token revokes its family",
            "security": CLIENT_AUTH, **_form(TokenHintSchema),
            "responses": {"200": {"description": "Revoked, or the token was unknown (no "
                                                 "difference, by RFC 7009)",
                                  "headers": NO_STORE_DOC}, **_failures()}}},
        "oauth.userinfo": {"get": userinfo, "post": dict(userinfo)},
        "oauth.discovery": {"get": {
            **tag, "summary": "OpenID Provider metadata (OIDC Discovery 1.0)",
            "responses": {"200": {"description": "The provider metadata", **_body({
                **ANY_OBJECT, "required": ["issuer", "token_endpoint", "jwks_uri"]})}}}},
        "oauth.jwks": {"get": {
            **tag, "summary": "The public signing keys (JWK Set)",
            "responses": {"200": {"description": "JWK Set", **_body({
                "type": "object", "required": ["keys"], "properties": {"keys": {
                    "type": "array", "items": ANY_OBJECT}}}, "application/jwk-set+json")}}}},
    }


def document_oauth_paths(spec: APISpec, url_map: Map) -> None:
    """Add the OAuth 2.0 / OIDC endpoints to ``spec`` (flask-smorest's), at the paths
    their Flask routes have in ``url_map``."""
    spec.components.security_scheme("clientSecretBasic", {"type": "http", "scheme": "basic"})
    for endpoint, operations in _operations().items():
        spec.path(rule=next(url_map.iter_rules(endpoint)), operations=operations)

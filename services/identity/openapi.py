"""Identity's OpenAPI description, served at ``GET /openapi.json``.

The JSON API is described from its marshmallow schemas with apispec: enrollment and
lifecycle contribute their own ``openapi_paths``; the clients admin API and the OAuth /
OIDC JSON endpoints are described here. The OAuth endpoints (tag ``OAuth 2.0 / OIDC``)
take form-encoded bodies and answer errors with RFC 6749 / RFC 6750 bodies
(``{"error", "error_description"}``), not problem+json. The HTML pages are not part of it.
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask, Response, jsonify
from marshmallow import Schema, fields, validate

from . import scopes
from .clients import GRANT_TYPES
from .enrollment.openapi import openapi_paths as enrollment_paths
from .lifecycle.openapi import openapi_paths as lifecycle_paths
from .schemas import ClientOut, ClientSchema

OAUTH_TAG = "OAuth 2.0 / OIDC"
TAGS = [
    {"name": "Enrollment", "description": "Enrollment, email verification, first login."},
    {"name": "Account lifecycle", "description": "Recovery, profile and help-desk actions."},
    {"name": "Clients admin", "description": "OIDC client registration (scope `iam.admin`)."},
    {"name": OAUTH_TAG, "description": "Form-encoded OAuth 2.0 / OIDC endpoints. Errors are "
                                       "RFC 6749 §5.2 / RFC 6750 bodies, not problem+json."},
]
# Which tag an operation from the helpers belongs to, by path prefix (first match wins).
TAG_BY_PREFIX = (("/admin/v1/clients", "Clients admin"), ("/v1/enrollments", "Enrollment"),
                 ("/v1/activation", "Enrollment"), ("/v1/security-questions", "Enrollment"),
                 ("/admin/v1/enrollments/{enrollment_id}/access-code/reissue",
                  "Account lifecycle"),
                 ("/admin/v1/enrollments", "Enrollment"), ("/admin/v1/audit", "Enrollment"),
                 ("/", "Account lifecycle"))


class ProblemSchema(Schema):
    """RFC 9457 problem details, the shape of every JSON API error outside OAuth."""

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String()
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))
    request_id = fields.String()


class OAuthErrorSchema(Schema):
    """RFC 6749 §5.2 error body (also RFC 6750 §3 for userinfo and RFC 7009/7662)."""

    error = fields.String(required=True)
    error_description = fields.String()
    error_uri = fields.String()
    state = fields.String()


class ClientCreatedSchema(ClientOut):
    client_secret = fields.String(metadata={"description": "Shown once; absent for public "
                                                          "clients."})


class SecretRotatedSchema(Schema):
    client_id = fields.String(required=True)
    client_secret = fields.String(required=True)


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


SCHEMAS: dict[str, type[Schema]] = {
    "Problem": ProblemSchema, "OAuthError": OAuthErrorSchema, "Client": ClientSchema,
    "ClientOut": ClientOut, "ClientCreated": ClientCreatedSchema,
    "SecretRotated": SecretRotatedSchema, "TokenRequest": TokenRequestSchema,
    "TokenResponse": TokenResponseSchema, "TokenHint": TokenHintSchema,
    "Introspection": IntrospectionSchema, "Userinfo": UserinfoSchema,
}
ADMIN = [{"bearer": [scopes.ADMIN]}]
# Client authentication: HTTP Basic, or the form fields (client_secret_post,
# private_key_jwt, public clients) — hence the empty alternative.
CLIENT_AUTH = [{"clientSecretBasic": []}, {}]
NO_STORE = {"Cache-Control": {"schema": {"type": "string", "enum": ["no-store"]}}}
CHALLENGE = {"WWW-Authenticate": {"schema": {"type": "string"}}}


def _json(schema: str | dict[str, Any], media: str = "application/json") -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema}"} if isinstance(schema, str) else schema
    return {"content": {media: {"schema": ref}}}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, **_json("Problem", "application/problem+json")}


def _oauth_error(description: str, **headers: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, **_json("OAuthError")}
    if headers:
        out["headers"] = headers
    return out


def _form(schema: str) -> dict[str, Any]:
    return {"requestBody": {"required": True,
                            **_json(schema, "application/x-www-form-urlencoded")}}


CLIENT_ID = [{"name": "client_id", "in": "path", "required": True, "schema": {"type": "string"}}]
DENIED = {"401": _problem("Missing or invalid bearer token (RFC 6750 challenge)"),
          "403": _problem("The token lacks scope `iam.admin`")}
OAUTH_FAILURES = {
    "400": _oauth_error("invalid_request, invalid_grant, unsupported_grant_type, "
                        "invalid_scope, invalid_target…"),
    "401": _oauth_error("invalid_client", **CHALLENGE),
    "429": _oauth_error("too_many_requests (see Retry-After)",
                        **{"Retry-After": {"schema": {"type": "integer"}}}),
    "503": _oauth_error("temporarily_unavailable (Redis or the database is down; see Retry-After)"),
}


def clients_paths(spec: APISpec) -> None:
    body = {"requestBody": {"required": True, **_json("Client")}}
    invalid = {"400": _problem("The body is not a JSON object"),
               "422": _problem("Invalid field values (`errors` by field)")}
    spec.path("/admin/v1/clients", operations={
        "post": {"summary": "Register a client; the secret is shown only in this answer",
                 "security": ADMIN, **body,
                 "responses": {"201": {"description": "Registered", "headers": NO_STORE,
                                       **_json("ClientCreated")}, **invalid, **DENIED}},
        "get": {"summary": "Every registered client", "security": ADMIN,
                "responses": {"200": {"description": "`items`", **_json({
                    "type": "object", "required": ["items"], "properties": {"items": {
                        "type": "array", "items": {"$ref": "#/components/schemas/ClientOut"}}}})},
                    **DENIED}}})
    spec.path("/admin/v1/clients/{client_id}", operations={
        "get": {"summary": "One client", "security": ADMIN, "parameters": CLIENT_ID,
                "responses": {"200": {"description": "The client", **_json("ClientOut")},
                              "404": _problem("No such client"), **DENIED}},
        "put": {"summary": "Replace a client's registration (a new secret when it becomes "
                           "confidential)", "security": ADMIN, "parameters": CLIENT_ID, **body,
                "responses": {"200": {"description": "Updated", "headers": NO_STORE,
                                      **_json("ClientCreated")},
                              "404": _problem("No such client"), **invalid, **DENIED}},
        "delete": {"summary": "Delete a client", "security": ADMIN, "parameters": CLIENT_ID,
                   "responses": {"204": {"description": "Deleted"},
                                 "404": _problem("No such client"), **DENIED}}})
    for action, summary in (("disable", "Disable a client: no new tokens, and every token "
                                        "issued to it revoked at once"),
                            ("enable", "Enable a disabled client (its revoked tokens stay "
                                       "revoked)")):
        spec.path(f"/admin/v1/clients/{{client_id}}/{action}", operations={"post": {
            "summary": summary, "security": ADMIN, "parameters": CLIENT_ID,
            "responses": {"200": {"description": "The client", **_json("ClientOut")},
                          "404": _problem("No such client"), **DENIED}}})
    spec.path("/admin/v1/clients/{client_id}/secret", operations={"post": {
        "summary": "Rotate a confidential client's secret", "security": ADMIN,
        "parameters": CLIENT_ID,
        "responses": {"200": {"description": "The new secret", "headers": NO_STORE,
                              **_json("SecretRotated")},
                      "404": _problem("No such client"),
                      "409": _problem("A public client has no secret"), **DENIED}}})
    spec.path("/v1/security-questions", operations={"get": {
        "summary": "The security questions a user may choose from",
        "responses": {"200": {"description": "`items`: key and localised text", **_json({
            "type": "object", "required": ["items"], "properties": {"items": {
                "type": "array", "items": {"type": "object", "required": ["key", "text"],
                                           "properties": {"key": {"type": "string"},
                                                          "text": {"type": "string"}}}}}})}}}})


def oauth_paths(spec: APISpec) -> None:
    tag = {"tags": [OAUTH_TAG]}
    spec.path("/token", operations={"post": {
        **tag, "summary": "Token endpoint: authorization_code (PKCE S256), refresh_token, "
                          "client_credentials", "security": CLIENT_AUTH, **_form("TokenRequest"),
        "responses": {"200": {"description": "Tokens", "headers": NO_STORE,
                              **_json("TokenResponse")}, **OAUTH_FAILURES}}})
    spec.path("/introspect", operations={"post": {
        **tag, "summary": "Token introspection (RFC 7662); confidential clients only",
        "security": CLIENT_AUTH, **_form("TokenHint"),
        "responses": {"200": {"description": "`active` false for any unknown, expired or "
                                             "revoked token", "headers": NO_STORE,
                              **_json("Introspection")}, **OAUTH_FAILURES}}})
    spec.path("/revoke", operations={"post": {
        **tag, "summary": "Token revocation (RFC 7009); a refresh token revokes its family",
        "security": CLIENT_AUTH, **_form("TokenHint"),
        "responses": {"200": {"description": "Revoked, or the token was unknown (no "
                                             "difference, by RFC 7009)", "headers": NO_STORE},
                      **OAUTH_FAILURES}}})
    userinfo = {
        **tag, "summary": "OIDC UserInfo: claims by the access token's scopes",
        "security": [{"bearer": ["openid"]}],
        "responses": {"200": {"description": "Claims", "headers": NO_STORE,
                              **_json("Userinfo")},
                      "401": _oauth_error("invalid_token (RFC 6750)", **CHALLENGE),
                      "403": _oauth_error("insufficient_scope: `openid` needed", **CHALLENGE),
                      "503": _oauth_error("temporarily_unavailable")}}
    spec.path("/userinfo", operations={"get": userinfo, "post": dict(userinfo)})
    any_object = {"type": "object", "additionalProperties": True}
    spec.path("/.well-known/openid-configuration", operations={"get": {
        **tag, "summary": "OpenID Provider metadata (OIDC Discovery 1.0)",
        "responses": {"200": {"description": "The provider metadata", **_json({
            **any_object, "required": ["issuer", "token_endpoint", "jwks_uri"]})}}}})
    spec.path("/jwks", operations={"get": {
        **tag, "summary": "The public signing keys (JWK Set)",
        "responses": {"200": {"description": "JWK Set", **_json({
            "type": "object", "required": ["keys"], "properties": {"keys": {
                "type": "array", "items": any_object}}}, "application/jwk-set+json")}}}})


def build_spec() -> APISpec:
    """Identity's whole JSON API as one OpenAPI 3.0.3 document."""
    spec = APISpec(title="Portico identity", version="1", openapi_version="3.0.3",
                   plugins=[MarshmallowPlugin()],
                   info={"description": "Enrollment, account lifecycle, OIDC clients and the "
                                        "OAuth 2.0 / OpenID Connect provider."})
    for name, schema in SCHEMAS.items():
        spec.components.schema(name, schema=schema)
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer",
                                               "bearerFormat": "JWT"})
    spec.components.security_scheme("clientSecretBasic", {"type": "http", "scheme": "basic"})
    for tag in TAGS:
        spec.tag(tag)
    enrollment_paths(spec)
    lifecycle_paths(spec)
    clients_paths(spec)
    oauth_paths(spec)
    return spec


def spec_dict() -> dict[str, Any]:
    """The spec as a dict, every operation tagged."""
    document = build_spec().to_dict()
    for path, operations in document["paths"].items():
        tag = next(t for prefix, t in TAG_BY_PREFIX if path.startswith(prefix))
        for operation in operations.values():
            if isinstance(operation, dict) and "responses" in operation:
                operation.setdefault("tags", [tag])
    return document


def init_openapi(app: Flask) -> None:
    """Serve ``GET /openapi.json`` (built once per app)."""
    document = spec_dict()

    @app.get("/openapi.json")
    def openapi_json() -> Response:
        response = jsonify(document)
        response.headers["Cache-Control"] = "public, max-age=300"
        return response

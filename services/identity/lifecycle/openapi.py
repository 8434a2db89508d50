"""The OpenAPI description of the lifecycle endpoints, to merge into identity's /openapi.json.

``openapi_paths(spec)`` adds schemas and paths to an ``apispec.APISpec`` with the
``MarshmallowPlugin`` (the same contract as ``services.identity.enrollment.openapi``).
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from .. import scopes
from .schemas import (
    EmailVerifySchema,
    HelpdeskUserSchema,
    PasswordChangeSchema,
    ProfileChangedSchema,
    ProfileSchema,
    ProfileUpdateSchema,
    ResetCompleteSchema,
    ResetRequestSchema,
    ResetTokenSchema,
    UsernameReminderSchema,
    WhySchema,
)

PROBLEM = {"description": "application/problem+json (`errors`: field → messages)",
           "content": {"application/problem+json": {"schema": {"type": "object"}}}}
TOO_MANY = {"description": "Too many requests (per IP or per target); see Retry-After",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
            "content": {"application/problem+json": {"schema": {"type": "object"}}}}
NEUTRAL = {"description": "Accepted; the same answer whether or not an account matched",
           "content": {"application/json": {"schema": {"type": "object", "properties": {
               "detail": {"type": "string"}}}}}}
HELPDESK = [{"bearer": [scopes.HELPDESK]}]
PROFILE = [{"bearer": ["profile"]}]
SCHEMAS = {"Why": WhySchema, "HelpdeskUser": HelpdeskUserSchema,
           "ResetRequest": ResetRequestSchema, "ResetToken": ResetTokenSchema,
           "ResetComplete": ResetCompleteSchema, "UsernameReminder": UsernameReminderSchema,
           "Profile": ProfileSchema, "ProfileUpdate": ProfileUpdateSchema,
           "ProfileChanged": ProfileChangedSchema, "PasswordChange": PasswordChangeSchema,
           "EmailVerify": EmailVerifySchema}


def _json(schema: str | dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _body(schema: str) -> dict[str, Any]:
    return {"requestBody": {"required": True, **_json(schema)}}


USER_ID = [{"name": "user_id", "in": "path", "required": True, "schema": {"type": "string"}}]


def openapi_paths(spec: APISpec) -> APISpec:
    for name, schema in SCHEMAS.items():
        if name not in spec.components.schemas:
            spec.components.schema(name, schema=schema)
    if "bearer" not in spec.components.security_schemes:
        spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer",
                                                   "bearerFormat": "JWT"})
    denied = {"401": PROBLEM, "403": PROBLEM}
    spec.path("/admin/v1/users", operations={"get": {
        "summary": "Search users by name/email/username words, email, company (help desk; "
                   "scope iam.helpdesk or entitlement helpdesk.act)", "security": HELPDESK,
        "parameters": [{"name": n, "in": "query", "schema": {"type": t}} for n, t in (
            ("q", "string"), ("email", "string"), ("company_id", "string"),
            ("company", "string"), ("status", "string"), ("limit", "integer"))],
        "responses": {"200": _json({"type": "object", "properties": {"items": {
            "type": "array", "items": {"$ref": "#/components/schemas/HelpdeskUser"}}}}),
            "422": PROBLEM, **denied}}})
    spec.path("/admin/v1/users/{user_id}", operations={"get": {
        "summary": "One user (help desk)", "security": HELPDESK, "parameters": USER_ID,
        "responses": {"200": _json("HelpdeskUser"), "404": PROBLEM, **denied}}})
    for action, summary, ok in (
            ("reactivate", "Reactivate an inactive user (tracking number returned)", "200"),
            ("unlock", "Lift a lockout", "200"), ("disable", "Disable; ends sessions", "200"),
            ("username-reminder", "Email the user their username", "202")):
        spec.path(f"/admin/v1/users/{{user_id}}/{action}", operations={"post": {
            "summary": summary + "; `why` required, audited and published",
            "security": HELPDESK, "parameters": USER_ID, **_body("Why"),
            "responses": {ok: {"description": "Done"}, "404": PROBLEM, "409": PROBLEM,
                          "422": PROBLEM, **denied}}})
    spec.path("/admin/v1/enrollments/{enrollment_id}/access-code/reissue", operations={"post": {
        "summary": "Re-issue an enrollment's Access Code with a `why` (help desk)",
        "security": HELPDESK, **_body("Why"),
        "parameters": [{"name": "enrollment_id", "in": "path", "required": True,
                        "schema": {"type": "string"}}],
        "responses": {"200": {"description": "The enrollment"}, "404": PROBLEM,
                      "409": PROBLEM, "422": PROBLEM, **denied}}})
    spec.path("/v1/password-resets", operations={"post": {
        "summary": "Forgot password: email a single-use 30-minute link", **_body("ResetRequest"),
        "responses": {"202": NEUTRAL, "422": PROBLEM, "429": TOO_MANY}}})
    spec.path("/v1/password-resets/question", operations={"post": {
        "summary": "The security question behind a live reset link", **_body("ResetToken"),
        "responses": {"200": _json({"type": "object", "properties": {
            "question": {"type": "string"}, "text": {"type": "string"},
            "expires_at": {"type": "string"}}}), "400": PROBLEM, "429": TOO_MANY}}})
    spec.path("/v1/password-resets/complete", operations={"post": {
        "summary": "Answer the question and set the new password (ends every session and "
                   "refresh token)", **_body("ResetComplete"),
        "responses": {"200": {"description": "Changed"}, "400": PROBLEM, "422": PROBLEM,
                      "429": TOO_MANY}}})
    spec.path("/v1/username-reminders", operations={"post": {
        "summary": "Forgot username: a reminder to the address on file",
        **_body("UsernameReminder"), "responses": {"202": NEUTRAL, "422": PROBLEM,
                                                   "429": TOO_MANY}}})
    spec.path("/v1/me", operations={
        "get": {"summary": "The caller's profile", "security": PROFILE,
                "responses": {"200": _json("Profile"), **denied}},
        "patch": {"summary": "Update job title, phone (E.164), language, notification "
                             "preferences; a new email is verified first and needs a "
                             "sign-in within 5 minutes (the token's auth_time; else 401 "
                             "insufficient_user_authentication with max_age)",
                  "security": PROFILE, **_body("ProfileUpdate"),
                  "responses": {"200": _json("ProfileChanged"), "422": PROBLEM, **denied}}})
    spec.path("/v1/me/password", operations={"post": {
        "summary": "Change the password (needs the current one)", "security": PROFILE,
        **_body("PasswordChange"),
        "responses": {"200": _json({"type": "object", "properties": {
            "tracking_number": {"type": "string"}}}), "400": PROBLEM, "422": PROBLEM,
            **denied}}})
    spec.path("/v1/me/email-verifications", operations={"post": {
        "summary": "Follow the link sent to the new address", **_body("EmailVerify"),
        "responses": {"200": {"description": "The new email is in use"}, "400": PROBLEM,
                      "429": TOO_MANY}}})
    return spec


def build_spec() -> APISpec:
    """A stand-alone spec of these endpoints (until identity serves one)."""
    return openapi_paths(APISpec(title="Portico identity: account lifecycle", version="1",
                                 openapi_version="3.0.3", plugins=[MarshmallowPlugin()]))

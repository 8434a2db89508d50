"""The OpenAPI description of the enrollment endpoints, to merge into identity's /openapi.json.

``openapi_paths(spec)`` adds the schemas and paths to an ``apispec.APISpec`` that has the
``MarshmallowPlugin``.
"""

from __future__ import annotations

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from .. import scopes
from .schemas import (
    ActivatedSchema,
    ActivationSchema,
    CredentialsSchema,
    EnrollmentCreatedSchema,
    EnrollmentSchema,
    EnrollmentViewSchema,
    VerifySchema,
)

PROBLEM = {"description": "application/problem+json; `errors` maps dotted field names "
                          "(e.g. `company.tax_id`, `account_numbers.0`) to messages",
           "content": {"application/problem+json": {"schema": {"type": "object"}}}}
TOO_MANY = {"description": "Too many requests (per IP or per target); see Retry-After",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
            "content": {"application/problem+json": {"schema": {"type": "object"}}}}
HELPDESK = [{"bearer": [scopes.HELPDESK]}]


def _json(schema: str) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def openapi_paths(spec: APISpec) -> APISpec:
    for name, schema in (("Enrollment", EnrollmentSchema), ("EnrollmentCreated",
                         EnrollmentCreatedSchema), ("Verify", VerifySchema),
                         ("Activation", ActivationSchema), ("Credentials", CredentialsSchema),
                         ("Activated", ActivatedSchema), ("EnrollmentView", EnrollmentViewSchema)):
        if name not in spec.components.schemas:
            spec.components.schema(name, schema=schema)
    if "bearer" not in spec.components.security_schemes:
        spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer",
                                                   "bearerFormat": "JWT"})
    spec.path("/v1/enrollments", operations={"post": {
        "summary": "Enroll: personal, company and account details, PIN and Word",
        "description": "A second enrollment with the email of a pending one answers the same "
                       "way but stores nothing (no enumeration).",
        "requestBody": {"required": True, **_json("Enrollment")},
        "responses": {"201": {"description": "Enrollment received", **_json("EnrollmentCreated")},
                      "400": PROBLEM, "422": PROBLEM, "429": TOO_MANY}}})
    spec.path("/v1/enrollments/verify", operations={"post": {
        "summary": "Redeem the single-use email verification link token",
        "requestBody": {"required": True, **_json("Verify")},
        "responses": {"200": {"description": "Verified (status code_issued or in_review)",
                              **_json("EnrollmentCreated")},
                      "400": PROBLEM, "429": TOO_MANY}}})
    spec.path("/v1/activation", operations={"post": {
        "summary": "First login: Access Code + PIN + Word → a short-lived activation token",
        "requestBody": {"required": True, **_json("Activation")},
        "responses": {"200": {"description": "Identity confirmed", "content": {
            "application/json": {"schema": {"type": "object", "properties": {
                "activation_token": {"type": "string"}, "expires_in": {"type": "integer"}}}}}},
            "400": PROBLEM, "422": PROBLEM, "429": TOO_MANY}}})
    spec.path("/v1/activation/credentials", operations={"post": {
        "summary": "Set username, password and three security questions; the user is active",
        "requestBody": {"required": True, **_json("Credentials")},
        "responses": {"201": {"description": "User activated", **_json("Activated")},
                      "400": PROBLEM, "422": PROBLEM, "429": TOO_MANY}}})
    for suffix, summary in (("", "Read an enrollment (help desk)"),
                            ("/access-code", "Re-issue the Access Code; the old one is void"),
                            ("/unlock", "Unlock a locked enrollment"),
                            ("/approve", "Approve an enrollment waiting for review")):
        method = "get" if not suffix else "post"
        spec.path(f"/admin/v1/enrollments/{{enrollment_id}}{suffix}", operations={method: {
            "summary": summary, "security": HELPDESK,
            "parameters": [{"name": "enrollment_id", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "responses": {"200": {"description": "The enrollment", **_json("EnrollmentView")},
                          "401": PROBLEM, "403": PROBLEM, "404": PROBLEM, "409": PROBLEM}}})
    spec.path("/admin/v1/audit", operations={"get": {
        "summary": "The audit log, newest first (help desk)", "security": HELPDESK,
        "parameters": [{"name": n, "in": "query", "schema": {"type": t}} for n, t in (
            ("subject_id", "string"), ("tracking_number", "string"), ("action", "string"),
            ("actor_id", "string"), ("since", "string"), ("until", "string"),
            ("before_id", "integer"), ("limit", "integer"))],
        "responses": {"200": {"description": "`items` and `next_before_id`"},
                      "401": PROBLEM, "403": PROBLEM, "422": PROBLEM}}})
    return spec


def build_spec() -> APISpec:
    """A stand-alone spec of these endpoints (until identity serves one)."""
    return openapi_paths(APISpec(title="Portico identity: enrollment", version="1",
                                 openapi_version="3.0.3", plugins=[MarshmallowPlugin()]))

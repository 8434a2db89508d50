"""Identity's OpenAPI document (``GET /openapi.json``): every operation it listed when it was
written by hand with apispec is still there, under the same tag, with the same answers
documented, its errors in the right shape (problem+json; RFC 6749 bodies on OAuth)."""

from __future__ import annotations

from typing import Any

import pytest

ENROLLMENT, LIFECYCLE, CLIENTS, OAUTH = ("Enrollment", "Account lifecycle", "Clients admin",
                                         "OAuth 2.0 / OIDC")
PASSKEYS = "Passkeys"
JSON, FORM = "application/json", "application/x-www-form-urlencoded"
PROBLEM = "application/problem+json"
# Operation → (tag, the statuses it documented, its request body's media type, whether it
# declares a security requirement), as the hand-written document had them.
OPERATIONS = {
    "GET /.well-known/openid-configuration": (OAUTH, "200", None, False),
    "GET /admin/v1/audit": (ENROLLMENT, "200 401 403 422", None, True),
    "GET /admin/v1/clients": (CLIENTS, "200 401 403", None, True),
    "POST /admin/v1/clients": (CLIENTS, "201 400 401 403 422", JSON, True),
    "DELETE /admin/v1/clients/{client_id}": (CLIENTS, "204 401 403 404", None, True),
    "GET /admin/v1/clients/{client_id}": (CLIENTS, "200 401 403 404", None, True),
    "PUT /admin/v1/clients/{client_id}": (CLIENTS, "200 400 401 403 404 422", JSON, True),
    "POST /admin/v1/clients/{client_id}/disable": (CLIENTS, "200 401 403 404", None, True),
    "POST /admin/v1/clients/{client_id}/enable": (CLIENTS, "200 401 403 404", None, True),
    "POST /admin/v1/clients/{client_id}/secret": (CLIENTS, "200 401 403 404 409", None, True),
    "GET /admin/v1/enrollments/{enrollment_id}": (ENROLLMENT, "200 401 403 404 409", None,
                                                  True),
    "POST /admin/v1/enrollments/{enrollment_id}/access-code": (
        ENROLLMENT, "200 401 403 404 409", None, True),
    "POST /admin/v1/enrollments/{enrollment_id}/access-code/reissue": (
        LIFECYCLE, "200 401 403 404 409 422", JSON, True),
    "POST /admin/v1/enrollments/{enrollment_id}/approve": (
        ENROLLMENT, "200 401 403 404 409", None, True),
    "POST /admin/v1/enrollments/{enrollment_id}/unlock": (
        ENROLLMENT, "200 401 403 404 409", None, True),
    # A company's MFA policy: the help desk's, and the company principal's (issue 26).
    "GET /admin/v1/companies/{company_id}/mfa-policy": (LIFECYCLE, "200 401 403 404", None,
                                                         True),
    "PUT /admin/v1/companies/{company_id}/mfa-policy": (LIFECYCLE, "200 400 401 403 404 422",
                                                         JSON, True),
    "GET /v1/companies/{company_id}/mfa-policy": (LIFECYCLE, "200 401 403 404 503", None, True),
    "PUT /v1/companies/{company_id}/mfa-policy": (LIFECYCLE, "200 400 401 403 404 422 503",
                                                  JSON, True),
    "GET /admin/v1/users": (LIFECYCLE, "200 401 403 422", None, True),
    "GET /admin/v1/users/{user_id}": (LIFECYCLE, "200 401 403 404", None, True),
    "POST /admin/v1/users/{user_id}/disable": (LIFECYCLE, "200 401 403 404 409 422", JSON,
                                               True),
    "POST /admin/v1/users/{user_id}/reactivate": (LIFECYCLE, "200 401 403 404 409 422", JSON,
                                                  True),
    "POST /admin/v1/users/{user_id}/unlock": (LIFECYCLE, "200 401 403 404 409 422", JSON,
                                              True),
    "POST /admin/v1/users/{user_id}/username-reminder": (
        LIFECYCLE, "202 401 403 404 409 422", JSON, True),
    "POST /introspect": (OAUTH, "200 400 401 429 503", FORM, True),
    "GET /jwks": (OAUTH, "200", None, False),
    "POST /revoke": (OAUTH, "200 400 401 429 503", FORM, True),
    "POST /token": (OAUTH, "200 400 401 429 503", FORM, True),
    "GET /userinfo": (OAUTH, "200 401 403 503", None, True),
    "POST /userinfo": (OAUTH, "200 401 403 503", None, True),
    "POST /v1/activation": (ENROLLMENT, "200 400 422 429", JSON, False),
    "POST /v1/activation/credentials": (ENROLLMENT, "201 400 422 429", JSON, False),
    "POST /v1/enrollments": (ENROLLMENT, "201 400 422 429", JSON, False),
    "POST /v1/enrollments/verify": (ENROLLMENT, "200 400 429", JSON, False),
    "GET /v1/me": (LIFECYCLE, "200 401 403", None, True),
    "PATCH /v1/me": (LIFECYCLE, "200 401 403 422", JSON, True),
    "POST /v1/me/email-verifications": (LIFECYCLE, "200 400 429", JSON, False),
    "POST /v1/me/password": (LIFECYCLE, "200 400 401 403 422", JSON, True),
    "POST /v1/password-resets": (LIFECYCLE, "202 422 429", JSON, False),
    "POST /v1/password-resets/complete": (LIFECYCLE, "200 400 422 429", JSON, False),
    "POST /v1/password-resets/question": (LIFECYCLE, "200 400 429", JSON, False),
    "GET /v1/security-questions": (ENROLLMENT, "200", None, False),
    "POST /v1/username-reminders": (LIFECYCLE, "202 422 429", JSON, False),
    # The passkey ceremonies the pages call (login session cookie + X-CSRF-Token).
    "POST /account/security/passkeys/options": (PASSKEYS, "200 401 403", None, True),
    "POST /login/passkey/options": (PASSKEYS, "200 403 429", None, True),
    "POST /login/passkey": (PASSKEYS, "200 400 401 403 422 429", JSON, True),
    "POST /login/second-factor/passkey/options": (PASSKEYS, "200 401 403 404 429", None, True),
    "POST /login/second-factor/passkey": (PASSKEYS, "200 400 401 403 422 429", JSON, True),
}


@pytest.fixture
def spec(make_app) -> dict[str, Any]:
    response = make_app("identity").test_client().get("/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def _resolved(spec: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """``item`` itself, or what its ``$ref`` (``#/components/...``) points at."""
    while "$ref" in item:
        node: Any = spec
        for part in item["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        item = node
    return item


def _operation(spec: dict[str, Any], label: str) -> dict[str, Any]:
    method, path = label.split(" ", 1)
    assert path in spec["paths"], label
    assert method.lower() in spec["paths"][path], label
    return spec["paths"][path][method.lower()]


def test_the_document_is_identitys_openapi_3(spec):
    assert spec["openapi"] == "3.0.3"
    assert spec["info"]["title"] == "Portico identity"
    assert {tag["name"] for tag in spec["tags"]} >= {ENROLLMENT, LIFECYCLE, CLIENTS, OAUTH}


def test_every_operation_keeps_its_tag_answers_body_and_security(spec):
    for label, (tag, statuses, body, secured) in OPERATIONS.items():
        operation = _operation(spec, label)
        assert operation["tags"] == [tag], label
        assert set(statuses.split()) <= set(operation["responses"]), label
        if body is None:
            assert "requestBody" not in operation, label
        else:
            assert body in _resolved(spec, operation["requestBody"])["content"], label
        assert bool(operation.get("security")) is secured, label


def test_every_documented_error_has_the_error_body_of_its_kind(spec):
    """problem+json everywhere, RFC 6749 / RFC 6750 error bodies on the OAuth endpoints."""
    for label in OPERATIONS:
        operation = _operation(spec, label)
        errors = {status: _resolved(spec, answer) for status, answer in
                  operation["responses"].items() if status == "default" or status >= "400"}
        for status, answer in errors.items():
            if operation["tags"] == [OAUTH]:
                schema = answer["content"][JSON]["schema"]
                assert _resolved(spec, schema)["required"] == ["error"], (label, status)
            else:
                assert PROBLEM in answer["content"], (label, status)


# Moved from tests/unit/test_enrollment_openapi.py and tests/unit/test_lifecycle_rules.py,
# which read the hand-written enrollment and lifecycle descriptions this document replaces.


def test_openapi_describes_every_json_endpoint(spec):
    enrollment_paths = {path for path, item in spec["paths"].items()
                        if any(operation.get("tags") == [ENROLLMENT]
                               for operation in item.values() if isinstance(operation, dict))}
    # /v1/security-questions was described apart from enrollment's other endpoints.
    assert enrollment_paths - {"/v1/security-questions"} == {
        "/v1/enrollments", "/v1/enrollments/verify", "/v1/activation",
        "/v1/activation/credentials", "/admin/v1/enrollments/{enrollment_id}",
        "/admin/v1/enrollments/{enrollment_id}/access-code",
        "/admin/v1/enrollments/{enrollment_id}/unlock",
        "/admin/v1/enrollments/{enrollment_id}/approve", "/admin/v1/audit"}
    enrollment = spec["components"]["schemas"]["Enrollment"]
    assert {"company", "account_numbers", "pin", "verification_word"} <= set(
        enrollment["required"])
    assert "429" in spec["paths"]["/v1/enrollments"]["post"]["responses"]


def test_openapi_describes_every_lifecycle_endpoint(spec):
    paths = spec["paths"]  # enrollment's and the lifecycle's in one identity document
    for path in ("/admin/v1/users", "/admin/v1/users/{user_id}/reactivate",
                 "/v1/password-resets", "/v1/password-resets/complete",
                 "/v1/username-reminders", "/v1/me", "/v1/me/password",
                 "/v1/me/email-verifications", "/v1/enrollments"):
        assert path in paths, path


def test_the_passkey_ceremonies_name_the_login_session_and_its_csrf_header(spec):
    assert spec["components"]["securitySchemes"]["loginSession"] == {
        "type": "apiKey", "in": "cookie", "name": "portico_session",
        "description": "identity's login session (set by its pages)"}
    for label, (tag, *_rest) in OPERATIONS.items():
        if tag != PASSKEYS:
            continue
        operation = _operation(spec, label)
        assert operation["security"] == [{"loginSession": []}], label
        header = [p for p in operation["parameters"] if p["in"] == "header"]
        assert [p["name"] for p in header] == ["X-CSRF-Token"], label
    assertion = _resolved(spec, _operation(spec, "POST /login/passkey")["requestBody"])
    schema = _resolved(spec, assertion["content"][JSON]["schema"])
    assert schema["required"] == ["credential"]

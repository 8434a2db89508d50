"""The API kernel the flask-smorest services share (services/common/api.py) and the one
mapping of the use cases' refusals to problem+json (services/common/app.py)."""

from __future__ import annotations

import pytest
from marshmallow import Schema, fields

from services.common import domain_errors
from services.common.api import Blueprint, init_api
from services.common.app import create_service_app
from services.common.config import CommonSettings, load

PROBLEM = "application/problem+json"

# Every documented operation and its documented answers, as they were when each service
# wrote its own Api subclass and parser: the shared kernel documents the same API.
OPERATIONS = {
    "permissions": {
        "/admin/v1/companies/{company_id}": {"get": ["200", "default"]},
        "/admin/v1/companies/{company_id}/administrators/{user_id}": {
            "delete": ["204", "422", "default"], "put": ["200", "422", "default"]},
        "/admin/v1/companies/{company_id}/principal": {"put": ["200", "422", "default"]},
        "/admin/v1/companies/{company_id}/program": {"put": ["200", "422", "default"]},
        "/admin/v1/grants/{grant_id}": {"delete": ["204", "422", "default"]},
        "/admin/v1/platform-roles": {"get": ["200", "422", "default"]},
        "/admin/v1/platform-roles/{user_id}/{role}": {
            "delete": ["204", "422", "default"], "put": ["200", "422", "default"]},
        "/v1/access-requests": {"get": ["200", "422", "default"],
                                "post": ["201", "422", "default"]},
        "/v1/access-requests/{request_id}": {"get": ["200", "default"]},
        "/v1/access-requests/{request_id}/approve": {"post": ["200", "422", "default"]},
        "/v1/access-requests/{request_id}/cancel": {"post": ["200", "422", "default"]},
        "/v1/access-requests/{request_id}/cosign": {"post": ["200", "422", "default"]},
        "/v1/access-requests/{request_id}/reject": {"post": ["200", "422", "default"]},
        "/v1/check": {"post": ["200", "422", "default"]},
        "/v1/check/batch": {"post": ["200", "422", "default"]},
        "/v1/entitlements": {"get": ["200", "default"]},
        "/v1/membership-requests": {"get": ["200", "422", "default"]},
        "/v1/membership-requests/{request_id}": {"get": ["200", "default"]},
        "/v1/membership-requests/{request_id}/approve": {"post": ["200", "422", "default"]},
        "/v1/membership-requests/{request_id}/reject": {"post": ["200", "422", "default"]},
        "/v1/users/{user_id}/entitlements": {"get": ["200", "default"]},
        "/v1/users/{user_id}/home": {"get": ["200", "422", "default"]},
    },
    "tracking": {
        "/v1/transactions": {"get": ["200", "422", "default"], "post": ["201", "422", "default"]},
        "/v1/transactions.csv": {"get": ["200", "422", "default"]},
        "/v1/transactions/{tracking_number}": {"get": ["200", "422", "default"]},
        "/v1/transactions/{tracking_number}/status": {"post": ["200", "422", "default"]},
    },
    "notifier": {
        "/v1/messages": {"get": ["200", "422", "default"]},
        "/v1/messages/{pk}": {"get": ["200", "default"]},
        "/v1/messages/{pk}/resend": {"post": ["200", "422", "default"]},
        "/v1/stats": {"get": ["200", "default"]},
    },
}
INFO = {"permissions": ("Portico permissions", "1"), "tracking": ("Portico tracking", "v1"),
        "notifier": ("Portico notifier", "v1")}


@pytest.mark.parametrize("service", sorted(OPERATIONS))
def test_each_service_documents_the_same_operations_as_before(make_app, service):
    spec = make_app(service).test_client().get("/openapi.json").get_json()
    operations = {path: {method: sorted(op["responses"]) for method, op in item.items()
                         if isinstance(op, dict) and "responses" in op}
                  for path, item in spec["paths"].items()}
    assert operations == OPERATIONS[service]
    assert (spec["info"]["title"], spec["info"]["version"]) == INFO[service]
    assert spec["openapi"] == "3.0.3"
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


@pytest.fixture
def app(make_app):
    """A service app with a use case for each kind of refusal."""
    app = make_app("tracking")
    app.config["TESTING"] = False  # the kernel's handlers answer, as in production
    refusals = {
        "missing": domain_errors.NotFound("No such thing."),
        "conflict": domain_errors.Conflict("Taken.", kind="name-taken"),
        "transition": domain_errors.IllegalTransition("It is approved.", current_status="approved"),
        "forbidden": domain_errors.Forbidden("Only the principal may."),
        "invalid": domain_errors.Invalid({"name": ["Too long."]}),
        "refused": domain_errors.DomainError("No."),
    }

    @app.get("/refuse/<what>")
    def refuse(what: str):
        raise refusals[what]

    return app


@pytest.mark.parametrize(("what", "status", "kind", "detail"), [
    ("missing", 404, "not-found", "No such thing."),
    ("conflict", 409, "name-taken", "Taken."),
    ("transition", 409, "illegal-transition", "It is approved."),
    ("forbidden", 403, "forbidden", "Only the principal may."),
    ("invalid", 422, "validation-error", "The request has invalid fields."),
    ("refused", 400, "error", "No."),
])
def test_a_use_case_refusal_is_answered_as_problem_json(app, what, status, kind, detail):
    response = app.test_client().get(f"/refuse/{what}", headers={"X-Request-ID": "r-1"})
    assert (response.status_code, response.mimetype) == (status, PROBLEM)
    body = response.get_json()
    assert body["type"] == f"https://portico.dev/problems/{kind}"
    assert (body["status"], body["detail"], body["request_id"]) == (status, detail, "r-1")


def test_a_refusal_carries_its_fields_and_extra_members(app):
    invalid = app.test_client().get("/refuse/invalid").get_json()
    assert invalid["errors"] == {"name": ["Too long."]}
    transition = app.test_client().get("/refuse/transition").get_json()
    assert transition["current_status"] == "approved" and "errors" not in transition


class Query(Schema):
    limit = fields.Integer(required=True)
    sort = fields.String(load_default="asc")


def test_the_shared_parser_answers_bad_arguments_with_unprefixed_field_errors(
        database_url, redis_url):
    settings = load(CommonSettings, {}, database_url=database_url("probe"), redis_url=redis_url)
    app = create_service_app("probe", settings)
    blp = Blueprint("probe", __name__, url_prefix="/probe")

    @blp.route("/query")
    @blp.arguments(Query, location="query")
    def query(args):
        return args

    @blp.route("/json", methods=["POST"])
    @blp.arguments(Query)
    def body(args):
        return args

    init_api(app, title="probe", version="1", blueprints=(blp,))
    client = app.test_client()
    assert client.get("/probe/query?limit=3").get_json() == {"limit": 3, "sort": "asc"}
    for response in (client.get("/probe/query?limit=x"),
                     client.post("/probe/json", json={"limit": "x"})):
        assert (response.status_code, response.mimetype) == (422, PROBLEM)
        assert response.get_json()["errors"] == {"limit": ["Not a valid integer."]}
    not_json = client.post("/probe/json", data="{", content_type="application/json")
    assert (not_json.status_code, not_json.mimetype) == (400, PROBLEM)
    app.extensions["portico"].db.dispose()


def test_the_document_names_problem_json_for_errors_and_blueprints_may_share_a_tag(
        database_url, redis_url):
    settings = load(CommonSettings, {}, database_url=database_url("probe"), redis_url=redis_url)
    app = create_service_app("probe", settings)
    first, second = (Blueprint(name, __name__, tag="Things") for name in ("first", "second"))

    @first.route("/first")
    @first.problems(404, 429)
    @first.response(200)
    def one():
        return {}

    @second.route("/second", methods=["POST"])
    @second.arguments(Query)
    @second.response(201)
    def two(args):
        return args

    things = {"name": "Things", "description": "Both blueprints' operations."}
    init_api(app, title="probe", version="1", blueprints=(first, second), tags=[things])
    spec = app.test_client().get("/openapi.json").get_json()
    assert spec["tags"] == [things]
    one_doc, two_doc = spec["paths"]["/first"]["get"], spec["paths"]["/second"]["post"]
    assert one_doc["tags"] == two_doc["tags"] == ["Things"]
    assert sorted(one_doc["responses"]) == ["200", "404", "429", "default"]
    assert sorted(two_doc["responses"]) == ["201", "422", "default"]
    responses = spec["components"]["responses"]
    for name in ("NOT_FOUND", "TOO_MANY_REQUESTS", "UNPROCESSABLE_ENTITY", "DEFAULT_ERROR"):
        assert responses[name]["content"] == {
            PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}, name
    assert "Retry-After" in responses["TOO_MANY_REQUESTS"]["headers"]
    problem = spec["components"]["schemas"]["Problem"]
    assert problem["required"] == ["status", "title", "type"]
    assert problem["additionalProperties"] is True
    app.extensions["portico"].db.dispose()


def test_a_refusal_is_titled_like_a_validation_problem_and_any_refusal_may_name_fields(app):
    class WrongAnswer(domain_errors.DomainError):
        kind = "wrong-answer"

        def __init__(self) -> None:
            super().__init__("Not that.")
            self.errors = {"answer": ["Not that."]}

    @app.get("/refuse-wrong-answer")
    def wrong_answer():
        raise WrongAnswer()

    client = app.test_client()
    assert client.get("/refuse/invalid").get_json()["title"] == "Invalid request"
    answer = client.get("/refuse-wrong-answer")
    assert answer.status_code == 400
    assert answer.get_json()["errors"] == {"answer": ["Not that."]}

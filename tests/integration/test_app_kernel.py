"""The kernel's cross-cutting behaviour, seen through a real service app."""

from __future__ import annotations

import io
import json
import logging

import pytest
import redis
from flask import abort, jsonify, request
from marshmallow import Schema, fields, validate
from sqlalchemy import text

from services.common.db import Database
from services.common.errors import Problem
from services.common.logging import configure_logging
from tests.support import free_port


class Body(Schema):
    name = fields.String(required=True)
    company = fields.Nested(Schema.from_dict({"tax_id": fields.String(required=True)}), required=True)
    account_numbers = fields.List(fields.String(validate=validate.Regexp(r"^\d+$")), required=True)


@pytest.fixture
def app(make_app):
    app = make_app("tracking")
    app.config["TESTING"] = False  # let the kernel's handlers answer, as in production

    @app.post("/echo")
    def echo():
        data = Body().load(request.get_json())
        return jsonify(data)

    @app.post("/login-ish")
    def login_ish():
        body = request.get_json(silent=True) or request.form
        logging.getLogger("portico.test").info("login attempt %s", dict(body))
        logging.getLogger("portico.test").info("header %s", request.headers.get("Authorization"))
        return jsonify(ok=True)

    @app.get("/boom")
    def boom():
        raise RuntimeError("SELECT secret FROM users WHERE password='hunter2'")

    @app.get("/status/<int:code>")
    def status(code):
        abort(code)

    @app.get("/conflict")
    def conflict():
        raise Problem(409, "illegal-transition", "The request is already approved.")

    return app


def test_request_id_is_echoed_or_generated(app):
    client = app.test_client()
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    generated = client.get("/healthz").headers["X-Request-ID"]
    assert len(generated) == 32
    # A header that could forge log lines is replaced, not echoed.
    forged = 'x" level="error'
    assert client.get("/healthz", headers={"X-Request-ID": forged}).headers["X-Request-ID"] != forged


@pytest.mark.parametrize("code", [400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 500])
def test_every_error_status_is_problem_json(app, code):
    response = app.test_client().get(f"/status/{code}")
    assert response.status_code == code
    assert response.mimetype == "application/problem+json"
    body = response.json
    assert body["status"] == code
    assert body["type"].startswith("https://")
    assert body["title"]
    if code == 429:
        assert response.headers["Retry-After"]


def test_unknown_route_and_wrong_method_are_problem_json(app):
    client = app.test_client()
    assert client.get("/nope").mimetype == "application/problem+json"
    wrong = client.get("/echo")
    assert wrong.status_code == 405
    assert wrong.mimetype == "application/problem+json"
    assert "POST" in wrong.headers["Allow"]


def test_validation_errors_are_per_field_with_dotted_names(app):
    response = app.test_client().post("/echo", json={"company": {}, "account_numbers": ["12a"]})
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    errors = response.json["errors"]
    assert set(errors) == {"name", "company.tax_id", "account_numbers.0"}
    assert all(isinstance(m, list) and m for m in errors.values())


def test_an_unexpected_error_is_500_without_stack_sql_or_secret(app, captured_log):
    response = app.test_client().get("/boom")
    assert response.status_code == 500
    text = response.get_data(as_text=True)
    assert "SELECT" not in text and "hunter2" not in text and "Traceback" not in text
    assert "hunter2" not in captured_log.getvalue()


def test_a_too_large_body_is_413(app):
    app.config["MAX_CONTENT_LENGTH"] = 100
    response = app.test_client().post("/echo", data="x" * 1000, content_type="application/json")
    assert response.status_code == 413
    assert response.mimetype == "application/problem+json"


def test_declared_problem_keeps_its_type(app):
    body = app.test_client().get("/conflict").json
    assert body["type"].endswith("/illegal-transition")
    assert body["detail"] == "The request is already approved."


def test_secrets_in_bodies_and_authorization_leave_no_trace_in_logs(app, captured_log):
    secrets = {
        "password": "Correct-Horse-Battery-9",
        "pin": "482913",
        "access_code": "K7QM-3XR9-PW2D",
        "verification_word": "Marmalade",
        "client_secret": "cs_9f8e7d6c5b4a",
    }
    token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    client = app.test_client()
    client.post("/login-ish", json={"username": "ana", **secrets},
                headers={"Authorization": f"Bearer {token}"})
    client.post("/login-ish", data={"username": "ana", **secrets},
                headers={"Authorization": f"Bearer {token}"})
    output = captured_log.getvalue()
    assert output, "the log captured nothing; the test would prove nothing"
    for value in [*secrets.values(), token]:
        assert value not in output
    assert "ana" in output  # non-secret fields still logged: redaction is targeted
    for line in output.splitlines():
        json.loads(line)  # every line is JSON


def test_card_account_numbers_are_redacted_from_log_text(captured_log):
    logging.getLogger("portico.test").warning("bad account 371449635398431 for user 12")
    assert "371449635398431" not in captured_log.getvalue()
    assert "user 12" in captured_log.getvalue()


@pytest.mark.parametrize("json_lines", [True, False])
def test_secret_fields_of_a_log_call_are_redacted(json_lines):
    """``extra`` fields are attached after the record factory runs: the formatters must
    redact them (they once went out in clear)."""
    stream = io.StringIO()
    configure_logging("tracking", "INFO", json_lines, stream=stream)
    try:
        logging.getLogger("portico.test").warning("sent", extra={
            "token": "s3cret-value", "note": "card 371449635398431", "user": "ana"})
    finally:
        configure_logging("tracking", "INFO", True)
    output = stream.getvalue()
    assert "s3cret-value" not in output and "371449635398431" not in output
    assert "[redacted]" in output and "ana" in output


@pytest.mark.parametrize("line", [
    "upstream said Authorization: Bearer {secret}",
    "retrying with authorization=Basic {secret}",
    "headers {{'Authorization': 'Bearer {secret}'}}",
    # Whatever the case of the key's name: the quick pre-check runs on case-folded text.
    "upstream said AUTHORIZATION: BEARER {secret}",
    "retrying with Client_Secret={secret}",
    "retrying with cliEnt_ſecret={secret}",  # a long s, which (?i) matches to "s"
])
def test_a_credential_after_an_authorization_key_is_redacted(captured_log, line):
    secret = "eyJhbGciOiJFUzI1NiJ9.c2lnbmF0dXJl"
    logging.getLogger("portico.test").warning(line.format(secret=secret))
    output = captured_log.getvalue()
    assert line.split()[0] in output  # the line was logged, minus the credential
    assert secret not in output


def test_plain_log_lines_carry_their_fields(app):
    stream = io.StringIO()
    configure_logging("tracking", "INFO", False, stream=stream)
    try:
        app.test_client().get("/healthz")
    finally:
        configure_logging("tracking", "INFO", True)
    line = [ln for ln in stream.getvalue().splitlines() if "portico.http" in ln][-1]
    assert "status=200" in line and "endpoint=/healthz" in line and "method=GET" in line


@pytest.mark.parametrize("kwargs", [
    {"query_string": "name=a%00b"},
    {"json": {"name": "a\u0000b", "company": {"tax_id": "x"}, "account_numbers": []}},
    {"data": "name=a%00b", "content_type": "application/x-www-form-urlencoded"},
])
def test_a_nul_character_is_a_clear_400_not_a_database_error(app, kwargs):
    response = app.test_client().post("/echo", **kwargs)
    assert response.status_code == 400
    assert response.json["type"].endswith("/invalid-character")


def test_percent_zero_zero_is_fine_inside_json_text(app):
    body = {"name": "discount 100%00 off", "company": {"tax_id": "x"}, "account_numbers": []}
    assert app.test_client().post("/echo", json=body).status_code == 200


def test_access_log_errors_mode_logs_only_failures(make_app):
    app = make_app("tracking", access_log="errors")
    stream = io.StringIO()
    configure_logging("tracking", "INFO", True, stream=stream)
    try:
        client = app.test_client()
        client.get("/healthz")
        client.get("/nope")
    finally:
        configure_logging("tracking", "INFO", True)
    lines = [json.loads(ln) for ln in stream.getvalue().splitlines()]
    requests_logged = [ln for ln in lines if ln["msg"] == "request"]
    assert [ln["status"] for ln in requests_logged] == [404]


def test_a_served_process_freezes_its_start_up_heap_once(make_app):
    import gc

    from services.common import app as kernel

    served = make_app("tracking")
    served.config["TESTING"] = False
    assert kernel._heap_frozen is False and gc.get_freeze_count() == 0
    served.test_client().get("/healthz")
    frozen = gc.get_freeze_count()
    assert frozen > 10_000  # modules, the app and its pools: out of every collection
    served.test_client().get("/healthz")
    assert gc.get_freeze_count() == frozen  # once per process


def test_a_test_app_does_not_freeze_the_heap(make_app):
    import gc

    testing = make_app("tracking")  # TESTING: apps come and go, they must stay collectable
    testing.test_client().get("/healthz")
    assert gc.get_freeze_count() == 0


def test_an_unreachable_database_or_redis_is_503_with_retry_after(app, captured_log):
    """Not a 500: the client may retry. Real drivers against a port nothing listens on."""
    port = free_port()
    database = Database(f"postgresql://portico@127.0.0.1:{port}/portico")
    cache = redis.Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=1)

    @app.get("/needs-database")
    def needs_database():
        with database.read() as session:
            return jsonify(answer=session.scalar(text("SELECT 1")))

    @app.get("/needs-redis")
    def needs_redis():
        return jsonify(answer=cache.get("anything"))

    client = app.test_client()
    for path in ("/needs-database", "/needs-redis"):
        response = client.get(path)
        assert response.status_code == 503, path
        assert response.mimetype == "application/problem+json"
        assert response.json["type"].endswith("/unavailable")
        assert response.headers["Retry-After"] == "5"
    lines = [json.loads(line) for line in captured_log.getvalue().splitlines()]
    down = [line for line in lines if line["msg"] == "dependency unavailable"]
    assert [line["error_type"] for line in down] == ["OperationalError", "ConnectionError"]
    assert str(port) not in captured_log.getvalue()  # the driver's message is not logged
    database.dispose()

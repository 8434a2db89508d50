"""The kernel's fast routes (services/common/fastpath.py) in a real service app: what they
answer themselves, and every request they must leave to the Flask app, body intact."""

from __future__ import annotations

import io
import json

import pytest
from flask import Flask, jsonify, request
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.app import context
from services.common.fastpath import FastAnswer, json_answer


@pytest.fixture
def app(make_app):
    app = make_app("tracking", max_content_length=1024)
    app.config["TESTING"] = False  # the kernel's handlers answer, as in production
    app.extensions["flask_calls"] = []
    app.extensions["fast_calls"] = []

    @app.post("/echo")
    def echo():
        app.extensions["flask_calls"].append(request.get_data())
        return jsonify(answered_by="flask", body=request.get_json(silent=True))

    def fast(req):
        app.extensions["fast_calls"].append(req.body)
        body = req.json()
        if not isinstance(body, dict):
            return None
        if body.get("decline"):
            return None
        if body.get("explode"):
            raise RuntimeError("password=hunter2")
        return json_answer({"answered_by": "fast", "body": body})

    context(app).fast_routes.add("POST", "/echo", fast)
    return app


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_a_fast_route_answers_without_entering_flask(app, captured_log):
    response = app.test_client().post("/echo", json={"a": 1},
                                      headers={"X-Request-ID": "req-42"})
    assert response.status_code == 200
    assert response.json == {"answered_by": "fast", "body": {"a": 1}}
    assert response.mimetype == "application/json"
    assert response.headers["Content-Length"] == str(len(response.data))
    assert response.headers["X-Request-ID"] == "req-42"
    assert app.extensions["flask_calls"] == []
    # Counted and logged like any answer of the app.
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    assert ('portico_http_requests_total{endpoint="/echo",method="POST",service="tracking",'
            'status="200"} 1.0') in metrics
    logged = [line for line in _lines(captured_log) if line.get("endpoint") == "/echo"]
    assert logged and logged[0]["status"] == 200 and logged[0]["request_id"] == "req-42"


def test_a_generated_request_id_replaces_one_unsafe_to_echo(app):
    forged = 'x" level="error'
    response = app.test_client().post("/echo", json={}, headers={"X-Request-ID": forged})
    assert response.json["answered_by"] == "fast"
    assert response.headers["X-Request-ID"] != forged
    assert len(response.headers["X-Request-ID"]) == 32


@pytest.mark.parametrize("body", [{"decline": True}, {"explode": True}, ["not", "a", "dict"]])
def test_a_declined_or_failing_fast_route_is_answered_by_the_app_with_the_same_body(app, body):
    raw = json.dumps(body).encode()
    response = app.test_client().post("/echo", data=raw,
                                      headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    assert response.json == {"answered_by": "flask", "body": body}
    assert app.extensions["fast_calls"] == [raw]
    assert app.extensions["flask_calls"] == [raw]


def test_a_failing_fast_route_logs_only_the_error_type(app, captured_log):
    app.test_client().post("/echo", json={"explode": True})
    text = captured_log.getvalue()
    assert "hunter2" not in text
    warning = next(line for line in _lines(captured_log)
                   if line["msg"] == "fast route failed; the app answers")
    assert warning["error_type"] == "RuntimeError" and warning["endpoint"] == "/echo"


@pytest.mark.parametrize("kwargs, status", [
    ({"query_string": {"a": "1"}, "json": {"a": 1}}, 200),  # a query string: the app's
    ({"data": "a=1", "content_type": "application/x-www-form-urlencoded"}, 200),
    ({"data": b"{}", "content_type": "text/plain"}, 200),
    ({"data": '{"a": "\\u0000"}', "content_type": "application/json"}, 400),  # the NUL guard
    ({"data": b'{"a": "x\x00"}', "content_type": "application/json"}, 400),
    ({"data": json.dumps({"a": "x" * 2000}), "content_type": "application/json"}, 413),
])
def test_requests_the_layer_cannot_vouch_for_never_reach_a_fast_route(app, kwargs, status):
    response = app.test_client().post("/echo", **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)
    assert app.extensions["fast_calls"] == []
    if status >= 400:
        assert response.mimetype == "application/problem+json"
    else:
        assert response.json["answered_by"] == "flask"


def test_a_chunked_body_is_left_to_the_app(app):
    environ_overrides = {"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True}
    response = app.test_client().post("/echo", data=b'{"a": 1}', content_type="application/json",
                                      environ_overrides=environ_overrides)
    assert response.json["answered_by"] == "flask"
    assert app.extensions["fast_calls"] == []


@pytest.mark.parametrize("length", ["²", "-1", "1e3", " 8"])
def test_a_content_length_that_is_not_plain_digits_is_left_to_the_app(app, length):
    response = app.test_client().post("/echo", data=b'{"a": 1}', content_type="application/json",
                                      environ_overrides={"CONTENT_LENGTH": length})
    assert response.status_code < 500
    assert app.extensions["fast_calls"] == []


def test_other_methods_and_paths_are_the_apps(app):
    client = app.test_client()
    assert client.get("/echo").status_code == 405
    assert client.post("/echo/", json={}).status_code == 404
    assert client.get("/healthz").json["status"] == "ok"
    assert app.extensions["fast_calls"] == []


def test_a_fast_answer_keeps_its_own_headers_and_status(app):
    context(app).fast_routes.add("GET", "/doc", lambda req: FastAnswer(
        201, b"<x/>", "application/xml", (("Cache-Control", "public, max-age=60"),)))
    response = app.test_client().get("/doc")
    assert response.status == "201 CREATED"
    assert response.data == b"<x/>" and response.mimetype == "application/xml"
    assert response.headers["Cache-Control"] == "public, max-age=60"


def test_a_fast_route_freezes_the_startup_heap_as_the_first_request_of_a_worker_does(app):
    from services.common import app as kernel

    assert not kernel._heap_frozen
    app.test_client().post("/echo", json={})
    assert kernel._heap_frozen


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(value=_json_values)
def test_json_answer_is_byte_for_byte_what_flask_jsonify_sends(value):
    with Flask(__name__).test_request_context():
        expected = jsonify(value).get_data()
    assert json_answer(value).body == expected

"""Rate limits (per IP and per target, 429 + Retry-After) and the help desk's audit log."""

from __future__ import annotations

import pytest

from services.identity.models import AuditEvent, AuditLogIsAppendOnly
from tests.integration.helpers.enrollment import access_code, enroll, enroll_and_verify, valid_body
from tests.integration.helpers.identity import problem


@pytest.fixture
def app(enrollment_app):
    return enrollment_app


def limited_app(make_app, **rules):
    return make_app("identity", **rules)


def test_enrollment_is_limited_per_email_and_per_ip(make_app):
    app = limited_app(make_app, enrollment_rate_limit_target="2 per hour",
                      enrollment_rate_limit_ip="4 per minute")
    client = app.test_client()
    for _ in range(2):
        assert client.post("/v1/enrollments", json=valid_body()).status_code == 201
    response = client.post("/v1/enrollments", json=valid_body())
    assert response.status_code == 429 and int(response.headers["Retry-After"]) > 0
    assert problem(response)["type"].endswith("too-many-requests")
    assert client.post("/v1/enrollments", json=valid_body(email="b@example.com")).status_code == 201
    # Five requests from this IP in the minute: the IP rule now answers.
    blocked = client.post("/v1/enrollments", json=valid_body(email="c@example.com"))
    assert blocked.status_code == 429
    other_ip = client.post("/v1/enrollments", json=valid_body(email="c@example.com"),
                           environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other_ip.status_code == 201


def test_activation_is_limited_per_ip_with_a_page_too(make_app):
    app = limited_app(make_app, activation_rate_limit_ip="2 per minute")
    client = app.test_client()
    for _ in range(2):
        client.post("/v1/activation", json={"access_code": "ABCD-EFGH-JKMN-PQRS", "pin": "1",
                                            "verification_word": "w"})
    response = client.post("/v1/activation", json={"access_code": "X", "pin": "1",
                                                   "verification_word": "w"})
    assert response.status_code == 429 and response.headers["Retry-After"]
    page = client.get("/activate")
    token = page.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    html = client.post("/activate", data={"csrf_token": token, "access_code": "X", "pin": "1",
                                          "verification_word": "w"})
    assert html.status_code == 429 and html.headers["Retry-After"]
    assert html.mimetype == "text/html"


def test_help_desk_reads_the_audit_trail_of_an_enrollment(app, client, token_issuer):
    verified = enroll_and_verify(app, client)
    client.post("/v1/activation", json={"access_code": access_code(app), "pin": "0000",
                                        "verification_word": "nope"})
    headers = {"Authorization": "Bearer " + token_issuer.issue(
        sub="hd-tool", client_id="hd-tool", aud="identity", scope="iam.helpdesk")}
    response = client.get(f"/admin/v1/audit?subject_id={verified['enrollment_id']}",
                          headers=headers)
    assert response.status_code == 200
    items = response.get_json()["items"]
    assert [i["action"] for i in items] == ["activation.failed", "access_code.issued",
                                            "enrollment.email_verified", "enrollment.submitted"]
    assert items[0]["detail"] == {"attempt": 1} and items[0]["actor"]["ip"] == "127.0.0.1"
    page = client.get(f"/admin/v1/audit?subject_id={verified['enrollment_id']}&limit=2"
                      f"&before_id={items[1]['id']}", headers=headers).get_json()["items"]
    assert [i["action"] for i in page] == ["enrollment.email_verified", "enrollment.submitted"]
    by_tn = client.get(f"/admin/v1/audit?tracking_number={verified['tracking_number']}"
                       "&action=enrollment.submitted", headers=headers).get_json()["items"]
    assert len(by_tn) == 1
    assert client.get("/admin/v1/audit?since=yesterday", headers=headers).status_code == 422
    # "²" is a digit to str.isdigit and not to int(): it was a 500.
    for limit in ("²", "-1", "ten"):
        refused = client.get(f"/admin/v1/audit?limit={limit}", headers=headers)
        assert refused.status_code == 422, limit
        assert refused.json["errors"] == {"limit": ["Use a whole number."]}
    assert client.get("/admin/v1/audit").status_code == 401


def test_audit_rows_cannot_be_changed_or_deleted(app, client):
    enroll(client)
    db = app.extensions["portico"].db
    with pytest.raises(AuditLogIsAppendOnly), db.transaction() as session:
        row = session.query(AuditEvent).first()
        row.action = "tampered"
        session.flush()
    with pytest.raises(AuditLogIsAppendOnly), db.transaction() as session:
        session.delete(session.query(AuditEvent).first())
        session.flush()


def test_duplicate_attempt_is_audited_against_the_existing_enrollment(app, client, token_issuer):
    first = enroll(client)
    enroll(client)
    headers = {"Authorization": "Bearer " + token_issuer.issue(
        sub="hd-tool", client_id="hd-tool", aud="identity", scope="iam.helpdesk")}
    items = client.get(f"/admin/v1/audit?subject_id={first['enrollment_id']}",
                       headers=headers).get_json()["items"]
    assert items[0]["action"] == "enrollment.duplicate_suppressed"


def test_the_per_code_activation_limit_keys_on_the_code_meant_not_as_typed(make_app):
    """Issue 24: ``ABCD-EFGH…`` and ``abcdefgh…`` each had their own budget."""
    app = limited_app(make_app, activation_rate_limit_target="2 per hour",
                      activation_rate_limit_ip="100 per minute")
    client = app.test_client()
    spellings = ["ABCD-EFGH-JKMN-PQRS", "abcdefghjkmnpqrs", "abcd efgh jkmn pqrs"]
    statuses = [client.post("/v1/activation", json={"access_code": code, "pin": "1",
                                                   "verification_word": "w"}).status_code
                for code in spellings]
    assert statuses[2] == 429 and 429 not in statuses[:2]
    # Another code keeps its own budget.
    assert client.post("/v1/activation", json={"access_code": "ABCD-EFGH-JKMN-PQRT", "pin": "1",
                                               "verification_word": "w"}).status_code != 429

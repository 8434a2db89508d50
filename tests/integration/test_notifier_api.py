"""The admin API: bearer tokens, the delivery log, resends, statistics, OpenAPI, /readyz."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from services.common.events import Envelope
from services.notifier.models import AuditEntry, MessageStatus
from tests.integration.helpers.notifier import SECRETS, emailed_samples, person
from tests.support import free_port

PROBLEM = "application/problem+json"


@pytest.fixture
def client(notifier):
    return notifier.app.test_client()


@pytest.fixture
def admin(token_issuer, permissions_answers):
    """hd-7 of the help desk (permissions says so), signed in through an app."""
    permissions_answers.grant("hd-7", "platform.helpdesk")
    token = token_issuer.issue(sub="hd-7", aud="notifier", scope="openid")
    return {"Authorization": f"Bearer {token}"}


def seed(notifier, count: int = 3) -> None:
    notifier.publish(*[Envelope.new("identity.password.changed", "identity",
                                    {**person(f"user-{i}", "en"), "via": "profile"},
                                    subject=f"user-{i}") for i in range(count)])
    notifier.consume()


def test_no_token_is_401_and_a_token_without_the_scope_is_403(client, token_issuer):
    response = client.get("/v1/messages")
    assert response.status_code == 401 and response.content_type == PROBLEM
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    other = token_issuer.issue(aud="notifier", scope="tracking.read")
    response = client.get("/v1/stats", headers={"Authorization": f"Bearer {other}"})
    assert response.status_code == 403 and response.content_type == PROBLEM
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    wrong_audience = token_issuer.issue(aud="identity", scope="notifier.admin")
    assert client.get("/v1/stats", headers={"Authorization": f"Bearer {wrong_audience}"}
                      ).status_code == 401


def test_an_admin_client_token_has_access(client, token_issuer):
    token = token_issuer.issue(sub="ops", client_id="ops", aud="notifier", scope="notifier.admin")
    assert client.get("/v1/stats", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_a_claimed_help_desk_power_is_not_taken_from_the_token(client, token_issuer,
                                                               permissions_answers):
    """Issue 24: the services trusted the token's entitlements claim (and a person's
    scopes); now permissions' current answer decides, so a revoked power is refused on
    the next request."""
    claimed = token_issuer.issue(sub="u-9", aud="notifier", scope="notifier.admin",
                                 entitlements=["helpdesk.act"])
    headers = {"Authorization": f"Bearer {claimed}"}
    assert client.get("/v1/stats", headers=headers).status_code == 403
    permissions_answers.grant("u-9", "platform.helpdesk")
    assert client.get("/v1/stats", headers=headers).status_code == 200
    permissions_answers.revoke("u-9", "platform.helpdesk")
    assert client.get("/v1/stats", headers=headers).status_code == 403


def test_list_filters_by_status_and_pages_with_a_cursor(notifier, client, admin):
    seed(notifier, 5)
    notifier.sink.handler.reply = "550 5.1.1 no such user"
    notifier.sender.claim(limit=2)
    for pk in [m.id for m in notifier.messages() if m.status == MessageStatus.SENDING]:
        notifier.sender._deliver(pk)

    first = client.get("/v1/messages?limit=2", headers=admin).get_json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = client.get(f"/v1/messages?limit=2&cursor={first['next_cursor']}", headers=admin).get_json()
    third = client.get(f"/v1/messages?limit=2&cursor={second['next_cursor']}", headers=admin).get_json()
    ids = [m["id"] for page in (first, second, third) for m in page["items"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 5
    assert third["next_cursor"] is None

    dead = client.get("/v1/messages?status=dead", headers=admin).get_json()["items"]
    assert len(dead) == 2 and {m["status"] for m in dead} == {"dead"}
    assert dead[0]["last_error"].startswith("550")
    queued = client.get("/v1/messages?status=queued&template=password_changed",
                        headers=admin).get_json()["items"]
    assert len(queued) == 3
    one = client.get("/v1/messages?recipient=USER-1@example.com", headers=admin).get_json()["items"]
    assert [m["recipient"] for m in one] == ["user-1@example.com"]


def test_bad_query_parameters_are_422_problems_with_per_field_errors(client, admin):
    response = client.get("/v1/messages?status=lost&limit=0&cursor=abc", headers=admin)
    assert response.status_code == 422 and response.content_type == PROBLEM
    body = response.get_json()
    assert set(body["errors"]) == {"status", "limit", "cursor"}
    assert body["type"].endswith("/validation-error")


def test_unknown_message_and_unknown_route_are_404_problems(client, admin):
    for path in ("/v1/messages/999", "/v1/nothing-here"):
        response = client.get(path, headers=admin)
        assert response.status_code == 404 and response.content_type == PROBLEM
    # An id beyond SQL INTEGER names no row (PostgreSQL would refuse to bind it).
    for response in (client.get("/v1/messages/999", headers=admin),
                     client.get(f"/v1/messages/{2**31}", headers=admin),
                     client.post(f"/v1/messages/{2**31}/resend", headers=admin)):
        assert response.status_code == 404 and response.content_type == PROBLEM
        body = response.get_json()
        assert body["type"].endswith("/not-found") and body["detail"] == "No message with this id."


def test_viewing_a_message_never_shows_a_secret_body(notifier, client, admin):
    samples = emailed_samples("en")
    notifier.publish(samples["identity.access_code.issued"], samples["identity.enrollment.locked"])
    notifier.consume()
    rows = {m.template: m for m in notifier.messages()}
    secret = client.get(f"/v1/messages/{rows['access_code_issued'].id}", headers=admin)
    assert secret.status_code == 200
    assert secret.get_json()["body_text"] is None and secret.get_json()["body_html"] is None
    assert SECRETS["access_code"] not in secret.get_data(as_text=True)
    assert "gAAAA" not in secret.get_data(as_text=True)  # nor its ciphertext
    plain = client.get(f"/v1/messages/{rows['enrollment_locked'].id}", headers=admin).get_json()
    assert "locked" in plain["body_text"] and plain["delivery_attempts"] == []

    notifier.deliver_all()
    after = client.get(f"/v1/messages/{rows['access_code_issued'].id}", headers=admin).get_json()
    assert after["status"] == "sent" and after["body_purged_at"]
    assert [a["outcome"] for a in after["delivery_attempts"]] == ["sent"]


def test_resending_a_dead_message_queues_it_again_and_is_audited(notifier, client, admin):
    seed(notifier, 1)
    notifier.sink.handler.reply = "554 5.7.1 rejected"
    notifier.sender.deliver_due()
    (row,) = notifier.messages()
    assert row.status == MessageStatus.DEAD

    response = client.post(f"/v1/messages/{row.id}/resend", headers=admin,
                           json={"reason": "mailbox fixed"})
    assert response.status_code == 200
    body = response.get_json()
    assert (body["status"], body["attempts"], body["last_error"]) == ("queued", 0, None)
    with notifier.db.read() as session:
        (audit,) = session.scalars(select(AuditEntry)).all()
        assert (audit.actor, audit.action, audit.message_pk) == ("hd-7", "message.resend", row.id)
        assert json.loads(audit.detail)["reason"] == "mailbox fixed"

    again = client.post(f"/v1/messages/{row.id}/resend", headers=admin)
    assert again.status_code == 409 and again.content_type == PROBLEM
    assert again.get_json()["type"].endswith("/illegal-transition")
    assert again.get_json()["detail"] == "Only a dead message can be resent; this one is queued."
    notifier.sink.handler.reply = None
    notifier.deliver_all()
    assert notifier.sink.message_id_counts() == {row.message_id: 1}
    invalid = client.post(f"/v1/messages/{row.id}/resend", headers=admin, json={"reason": 5})
    assert invalid.status_code == 422 and "reason" in invalid.get_json()["errors"]


def test_a_message_whose_secret_body_was_purged_cannot_be_resent(notifier, client, admin):
    notifier.publish(emailed_samples("en")["identity.access_code.issued"])
    notifier.consume()
    notifier.deliver_all()
    (row,) = notifier.messages()
    assert row.status == MessageStatus.SENT and row.body_text is None
    refused = client.post(f"/v1/messages/{row.id}/resend", headers=admin)
    assert refused.status_code == 409 and refused.content_type == PROBLEM
    body = refused.get_json()
    assert body["type"].endswith("/bodies-purged")
    assert body["detail"] == "The message's bodies were purged; it cannot be resent."


def test_stats_count_messages_by_status_and_template(notifier, client, admin):
    seed(notifier, 3)
    notifier.sender.claim(limit=1)
    body = client.get("/v1/stats", headers=admin).get_json()
    assert body["total"] == 3
    assert body["by_status"] == {"queued": 2, "sending": 1, "sent": 0, "retrying": 0, "dead": 0}
    assert body["by_template"] == {"password_changed": {"queued": 2, "sending": 1}}


def test_openapi_document_describes_every_operation(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.get_json()
    assert spec["openapi"] == "3.0.3"
    assert set(spec["paths"]) == {"/v1/messages", "/v1/messages/{pk}",
                                  "/v1/messages/{pk}/resend", "/v1/stats"}
    for path in spec["paths"].values():
        for operation in path.values():
            if isinstance(operation, dict) and "responses" in operation:
                assert operation["security"] == [{"bearerAuth": []}]
                assert "schema" in operation["responses"]["200"]["content"]["application/json"]
    assert "bearerAuth" in spec["components"]["securitySchemes"]


def test_readyz_shows_smtp_reachability_without_failing_on_it(client, make_app):
    up = client.get("/readyz")
    assert up.status_code == 200 and up.get_json()["detail"]["smtp"]["reachable"] is True
    down = make_app("notifier", smtp_port=free_port()).test_client().get("/readyz")
    body = down.get_json()
    assert down.status_code == 200 and body["status"] == "ready"
    assert body["checks"] == {"database": True, "redis": True}
    assert body["detail"]["smtp"]["reachable"] is False
    assert body["detail"]["smtp"]["gates_readiness"] is False

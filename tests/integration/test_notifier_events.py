"""Events in, emails out: every emailed event type, both languages, through real Redis
Streams, a real database and a real SMTP server."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from services.common.events import Envelope
from services.notifier.handlers import registry
from services.notifier.models import MessageStatus, OutgoingMessage, Recipient
from services.notifier.recipients import RecipientUnknown
from tests.integration.helpers.notifier import (
    SECRETS,
    TRACKING,
    activated,
    emailed_samples,
    person,
    sample_users,
)

# Template(s) and recipients each event type produces, for lang "en" (see emailed_samples).
EXPECTED = {
    "identity.enrollment.submitted": {("enrollment_submitted", "enrollee-{l}@example.com")},
    "identity.access_code.issued": {("access_code_issued", "enrollee-{l}@example.com")},
    "identity.enrollment.locked": {("enrollment_locked", "enrollee-{l}@example.com")},
    "identity.user.deactivated": {("user_deactivated", "u-{l}@example.com")},
    "identity.user.inactivity_warning": {("inactivity_warning", "u-{l}@example.com")},
    "identity.user.reactivated": {("user_reactivated", "u-{l}@example.com")},
    "identity.password_reset.requested": {("password_reset_requested", "u-{l}@example.com")},
    "identity.password.changed": {("password_changed", "u-{l}@example.com")},
    "identity.username.reminder": {("username_reminder", "u-{l}@example.com")},
    "identity.contact.change_requested": {("contact_change_verification", "new-{l}@example.com"),
                                          ("contact_change_notice", "u-{l}@example.com")},
    "permissions.request.created": {("access_request_created", "pa-{l}@example.com")},
    "permissions.request.reminder": {("access_request_reminder", "pa-{l}@example.com")},
    "permissions.request.approved": {("access_request_decided", "req-{l}@example.com"),
                                     ("access_request_decided", "tgt-{l}@example.com")},
    "permissions.request.rejected": {("access_request_decided", "req-{l}@example.com"),
                                     ("access_request_decided", "tgt-{l}@example.com")},
    "permissions.request.expired": {("access_request_decided", "req-{l}@example.com"),
                                    ("access_request_decided", "tgt-{l}@example.com")},
    "permissions.principal.changed": {("principal_changed", "pa-{l}@example.com"),
                                      ("principal_changed", "req-{l}@example.com")},
    "permissions.membership.requested": {("membership_requested", "pa-{l}@example.com")},
    "permissions.membership.approved": {("membership_decided", "tgt-{l}@example.com")},
    "permissions.membership.rejected": {("membership_decided", "tgt-{l}@example.com")},
    "permissions.membership.expired": {("membership_decided", "tgt-{l}@example.com")},
    "tracking.status.changed": {("status_changed", "tgt-{l}@example.com")},
}
SPANISH_MARKERS = ("Hola", "Número de seguimiento")


@pytest.mark.parametrize("lang", ["en", "es"])
def test_every_emailed_event_type_renders_sends_and_leaves_no_secret_behind(
        notifier, lang, caplog, capfd):
    samples = emailed_samples(lang)
    assert set(samples) == set(EXPECTED)
    # Every notifier log line, at DEBUG (the SMTP server's own log is the other side's).
    with caplog.at_level(logging.DEBUG, logger="portico"):
        notifier.publish(*[activated(u, lang) for u in sample_users(lang)])
        notifier.consume()
        notifier.publish(*samples.values())
        notifier.consume()
        notifier.deliver_all()

    rows = notifier.messages()
    by_event = {t: {(m.template, m.recipient) for m in rows if m.event_type == t} for t in samples}
    assert by_event == {t: {(tpl, to.format(l=lang)) for tpl, to in exp}
                        for t, exp in EXPECTED.items()}
    assert all(m.status == MessageStatus.SENT and m.language == lang for m in rows)

    received = {str(m["Message-ID"]): m for m in notifier.sink.messages}
    assert len(received) == len(rows) == len(notifier.sink.messages)
    for row in rows:
        email = received[row.message_id]
        assert email.get_content_type() == "multipart/alternative"
        text = email.get_body(("plain",)).get_content()
        html = email.get_body(("html",)).get_content()
        assert str(email["Subject"]).strip() == row.subject and row.subject
        assert str(email["To"]) == row.recipient
        envelope = next(s for s in samples.values() if s.id == row.event_id)
        if envelope.tracking_number:
            assert TRACKING in text and TRACKING in html
        if lang == "es":
            assert "Hola" in text
        else:
            assert "Hello" in text

    def email_of(template: str) -> str:
        row = next(m for m in rows if m.template == template)
        email = received[row.message_id]
        return email.get_body(("plain",)).get_content() + email.get_body(("html",)).get_content()

    assert SECRETS["verification_url"] in email_of("enrollment_submitted")
    assert SECRETS["access_code"] in email_of("access_code_issued")
    assert SECRETS["reset_url"] in email_of("password_reset_requested")
    assert SECRETS["username"] in email_of("username_reminder")
    assert SECRETS["verification_url"] in email_of("contact_change_verification")
    assert "800 555 0199" in email_of("user_deactivated")
    assert "800 555 0199" in email_of("inactivity_warning")

    stored = notifier.every_stored_value()
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records
                       if r.name.startswith("portico")) + "".join(capfd.readouterr())
    assert "message sent" in logged
    for secret in SECRETS.values():
        assert secret not in stored
        assert secret not in logged
    secret_rows = [m for m in rows if m.carries_secret]
    assert {m.template for m in secret_rows} == {
        "enrollment_submitted", "access_code_issued", "password_reset_requested",
        "username_reminder", "contact_change_verification"}
    assert all(m.body_text is None and m.body_html is None and m.body_purged_at for m in secret_rows)


def test_secret_bodies_are_encrypted_while_the_message_waits(notifier):
    samples = emailed_samples("en")
    notifier.publish(samples["identity.access_code.issued"], samples["identity.enrollment.locked"])
    notifier.consume()
    secret, plain = sorted(notifier.messages(), key=lambda m: m.template)
    assert secret.template == "access_code_issued" and secret.carries_secret
    assert SECRETS["access_code"] not in notifier.every_stored_value()
    assert secret.body_text and secret.body_text.startswith("gAAAA")  # a Fernet token
    assert not plain.carries_secret and "Ana" in plain.body_text


def test_a_redelivered_event_queues_and_sends_nothing_twice(notifier):
    envelope = emailed_samples("en")["identity.password.changed"]
    notifier.publish(envelope, envelope)
    notifier.consume()
    # Even a handler run outside the processed-event guard queues no second copy.
    with notifier.db.transaction() as session:
        registry(session, envelope)
    notifier.deliver_all()
    notifier.publish(envelope)
    notifier.consume()
    notifier.deliver_all()
    assert len(notifier.messages()) == 1
    assert list(notifier.sink.message_id_counts().values()) == [1]


def test_opt_out_skips_informational_email_but_never_security_email(notifier):
    notifier.publish(activated("u-opt", "en", status_changes=False))
    notifier.consume()
    status = Envelope.new("tracking.status.changed", "tracking", {
        "transaction_type": "password_reset", "old_status": "submitted",
        "new_status": "completed", "title_en": "Password reset", "title_es": "", "comment": ""},
        subject="u-opt", tracking_number=TRACKING)
    changed = Envelope.new("identity.password.changed", "identity",
                           {**person("u-opt", "en"), "via": "profile"}, subject="u-opt")
    notifier.publish(status, changed)
    notifier.consume()
    assert [m.template for m in notifier.messages()] == ["password_changed"]

    # Opting back in (a contact.changed carrying the preference) brings them back.
    notifier.publish(Envelope.new("identity.contact.changed", "identity", {
        **person("u-opt", "en"), "phone": "", "job_title": "", "family_name": "",
        "notifications": {"status_changes": True}}, subject="u-opt"))
    again = Envelope.new("tracking.status.changed", "tracking", status.data, subject="u-opt")
    notifier.publish(again)
    notifier.consume()
    assert [m.template for m in notifier.messages()] == ["password_changed", "status_changed"]


def test_the_read_model_follows_contact_changes_and_ignores_stale_events(notifier):
    newer = Envelope.new("identity.contact.changed", "identity", {
        **person("u-rm", "es"), "email": "new@example.com", "notifications": {"status_changes": False}},
        subject="u-rm")
    older = activated("u-rm", "en")
    older = Envelope(**{**older.__dict__, "occurred_at": "2000-01-01T00:00:00+00:00"})
    notifier.publish(newer, older)
    notifier.consume()
    with notifier.db.read() as session:
        row = session.get(Recipient, "u-rm")
        assert (row.email, row.preferred_language, row.status_changes) == (
            "new@example.com", "es", False)


def test_an_email_for_a_user_not_yet_known_waits_for_the_read_model(notifier):
    created = emailed_samples("en")["permissions.request.created"]
    with pytest.raises(RecipientUnknown), notifier.db.transaction() as session:
        registry(session, created)
    with notifier.db.read() as session:
        assert session.scalars(select(OutgoingMessage)).all() == []
    notifier.publish(activated("pa-en", "en"))
    notifier.consume()
    with notifier.db.transaction() as session:
        registry(session, created)
    assert [m.recipient for m in notifier.messages()] == ["pa-en@example.com"]

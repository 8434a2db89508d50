"""Pure rules of the notifier: templates, Message-IDs, backoff, the message state machine,
SMTP failure classes, settings and the event → handler map."""

from __future__ import annotations

import re
import smtplib
from pathlib import Path

import pytest

from services.common.config import ConfigError, load
from services.notifier.delivery import backoff_delay
from services.notifier.handlers import INFORMATIONAL_TEMPLATES, SECURITY_TEMPLATES, registry
from services.notifier.messages import message_id_for
from services.notifier.models import (
    ALLOWED_TRANSITIONS,
    IllegalTransition,
    MessageStatus,
    OutgoingMessage,
)
from services.notifier.settings import NotifierSettings
from services.notifier.smtp import MailDirCheck, classify
from services.notifier.templating import available_templates, language_of, render

CONTEXT = dict(
    given_name="Ana", tracking_number="PTC-7K3M-9QX2-H", portal_url="https://portal.example",
    helpdesk_phone="800 555 0100", helpdesk_hours_en="Mon-Fri", helpdesk_hours_es="lunes a viernes",
    verification_url="https://portal.example/v?t=1", company_name="ACME", requires_review=True,
    access_code="AC-1", expires_at="2030-01-02T03:04:05+00:00", reissued=False,
    reset_url="https://portal.example/r?t=1", via="reset", username="ana", new_email="n@example.com",
    reason="inactivity", days_left=10, request_id="r-1", entitlements=["cards.cancel"],
    justification="month end", needs_cosign=True, requester_name="Bo", target_name="Cy",
    comment="fine", outcome="approved", role="new", transaction_type="enrollment",
    old_status="submitted", new_status="in_review", title_en="Enrollment", title_es="Inscripción",
    newcomer_name="Dee Newman", accounts=["11111"], brand_name="Acme Cards",
    brand_logo_url="https://id.example/brand/logo", factor="totp", remaining=9,
)


@pytest.mark.parametrize("template", available_templates())
@pytest.mark.parametrize("lang", ["en", "es"])
def test_every_template_renders_subject_text_and_html_with_the_tracking_number(template, lang):
    rendered = render(template, lang, CONTEXT)
    assert rendered.subject and "\n" not in rendered.subject and "{" not in rendered.subject
    for body in (rendered.text, rendered.html):
        assert "PTC-7K3M-9QX2-H" in body
        assert "{{" not in body and "{%" not in body
    assert rendered.html.lstrip().startswith("<!DOCTYPE html>")
    assert f'<html lang="{lang}">' in rendered.html
    assert ("Hola" if lang == "es" else "Hello") in rendered.text


def test_every_template_folder_has_both_languages_and_three_parts():
    root = Path(__file__).resolve().parents[2] / "services" / "notifier" / "templates"
    for template in available_templates():
        for lang in ("en", "es"):
            assert {p.name for p in (root / template / lang).iterdir()} == {
                "subject.txt", "body.txt", "body.html"}
    assert set(available_templates()) == SECURITY_TEMPLATES | INFORMATIONAL_TEMPLATES | {
        "access_request_created", "access_request_reminder", "access_request_decided",
        "principal_changed", "membership_requested", "membership_decided"}


def test_without_a_tracking_number_no_tracking_line_is_printed():
    rendered = render("password_changed", "en", {**CONTEXT, "tracking_number": None})
    assert "Tracking number" not in rendered.text and "Tracking number" not in rendered.html


def test_html_is_autoescaped_and_text_is_not():
    rendered = render("access_request_created", "en",
                      {**CONTEXT, "justification": '<script>alert("x")</script> & co'})
    assert "<script>" not in rendered.html and "&lt;script&gt;" in rendered.html
    assert '<script>alert("x")</script> & co' in rendered.text


def test_a_missing_template_variable_fails_instead_of_sending_a_hole():
    context = {k: v for k, v in CONTEXT.items() if k != "access_code"}
    with pytest.raises(Exception, match="access_code"):
        render("access_code_issued", "en", context)


def test_language_falls_back_to_english():
    assert [language_of(v) for v in ("es", "es-MX", "EN", "fr", None, "")] == [
        "es", "es", "en", "en", "en", "en"]


def test_message_ids_are_stable_per_event_template_and_recipient():
    a = message_id_for("ev-1", "password_changed", "Ana@Example.com")
    assert a == message_id_for("ev-1", "password_changed", "ana@example.com ")
    assert re.fullmatch(r"<ev-1\.password_changed\.[0-9a-f]{16}@portico>", a)
    assert a != message_id_for("ev-1", "password_changed", "bo@example.com")
    assert a != message_id_for("ev-2", "password_changed", "ana@example.com")
    assert "ana" not in a.lower().split(".", 2)[2]  # the address is hashed, not shown


def test_backoff_doubles_with_jitter_and_is_capped():
    low = [backoff_delay(n, 30, 3600, rng=lambda: 0.0) for n in range(1, 10)]
    high = [backoff_delay(n, 30, 3600, rng=lambda: 1.0) for n in range(1, 10)]
    assert low[:4] == [22.5, 45.0, 90.0, 180.0]
    assert high[:2] == [37.5, 75.0]
    assert max(high) == 3600 * 1.25 and max(low) == 3600 * 0.75


def test_message_state_machine():
    message = OutgoingMessage(status=MessageStatus.QUEUED)
    for wanted in (MessageStatus.SENDING, MessageStatus.RETRYING, MessageStatus.SENDING,
                   MessageStatus.DEAD, MessageStatus.QUEUED, MessageStatus.SENDING,
                   MessageStatus.SENT):
        message.move_to(wanted)
    assert message.status == MessageStatus.SENT
    with pytest.raises(IllegalTransition):
        message.move_to(MessageStatus.QUEUED)
    assert ALLOWED_TRANSITIONS[MessageStatus.SENT] == frozenset()
    with pytest.raises(IllegalTransition):
        OutgoingMessage(status=MessageStatus.QUEUED).move_to(MessageStatus.SENT)


@pytest.mark.parametrize(("exc", "temporary", "code"), [
    (smtplib.SMTPDataError(451, b"try later"), True, 451),
    (smtplib.SMTPDataError(554, b"rejected"), False, 554),
    (smtplib.SMTPRecipientsRefused({"a@b": (550, b"no such user")}), False, 550),
    (smtplib.SMTPRecipientsRefused({"a@b": (452, b"mailbox full")}), True, 452),
    (smtplib.SMTPSenderRefused(553, b"bad sender", "x@y"), False, 553),
    (smtplib.SMTPAuthenticationError(535, b"bad credentials"), True, 535),
    (smtplib.SMTPServerDisconnected("gone"), True, None),
    (ConnectionRefusedError(111, "refused"), True, None),
    (TimeoutError("timed out"), True, None),
])
def test_smtp_failures_are_sorted_into_temporary_and_permanent(exc, temporary, code):
    failure = classify(exc)
    assert (failure.temporary, failure.code) == (temporary, code)
    assert failure.error


def test_the_mail_directory_check_finds_a_message_id_in_saved_headers(tmp_path):
    (tmp_path / "a.eml").write_bytes(b"X-RcptTo: a@b\r\nMessage-ID: <ev.t.1@portico>\r\n\r\nbody")
    (tmp_path / "b.eml").write_bytes(b"Subject: x\r\n\r\nMessage-ID: <in-body@portico>\r\n")
    check = MailDirCheck(tmp_path)
    assert check("<ev.t.1@portico>") is True
    assert check("<in-body@portico>") is False
    assert MailDirCheck(tmp_path / "missing")("<ev.t.1@portico>") is False


def test_settings_validate_smtp_security_and_read_the_help_desk():
    settings = load(NotifierSettings, {"SMTP_SECURITY": "STARTTLS", "HELPDESK_PHONE": "1 800 1"})
    assert (settings.smtp_security, settings.helpdesk_phone, settings.max_attempts) == (
        "starttls", "1 800 1", 6)
    with pytest.raises(ConfigError, match="SMTP_SECURITY"):
        load(NotifierSettings, {"SMTP_SECURITY": "tls13"})
    with pytest.raises(ConfigError, match="NOTIFY_MAX_ATTEMPTS"):
        load(NotifierSettings, {"NOTIFY_MAX_ATTEMPTS": "0"})


def test_every_event_type_that_sends_email_per_the_catalogue_has_a_handler():
    catalogue = (Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text()
    emailed = {
        "identity.enrollment.submitted", "identity.access_code.issued",
        "identity.enrollment.locked", "identity.password_reset.requested",
        "identity.password.changed", "identity.username.reminder",
        "identity.contact.change_requested", "identity.user.deactivated",
        "identity.user.inactivity_warning", "identity.user.reactivated",
        "permissions.request.created", "permissions.request.reminder",
        "permissions.request.approved", "permissions.request.rejected",
        "permissions.request.expired", "permissions.principal.changed",
        "permissions.membership.requested", "permissions.membership.approved",
        "permissions.membership.rejected", "permissions.membership.expired",
        "tracking.status.changed", "identity.factor.added", "identity.factor.removed",
        "identity.recovery_code.used", "identity.factors.reset",
    }
    read_model = {"identity.user.activated", "identity.contact.changed"}
    for event_type in emailed | read_model:
        assert f"`{event_type}`" in catalogue or event_type.rsplit(".", 1)[-1] in catalogue
    assert set(registry.types) == emailed | read_model

@pytest.mark.parametrize("template", available_templates())
@pytest.mark.parametrize("lang", ["en", "es"])
def test_every_email_shows_the_brand_name_and_logo(template, lang):
    rendered = render(template, lang, {**CONTEXT, "brand_name": "Acme Cards",
                                       "brand_logo_url": "https://id.acme.example/brand/logo"})
    assert '<img src="https://id.acme.example/brand/logo" alt=""' in rendered.html
    assert "<strong" in rendered.html and "Acme Cards</strong>" in rendered.html
    assert "Acme Cards" in rendered.text


def test_the_logo_is_identitys_unless_an_url_is_given():
    settings = load(NotifierSettings, {"PUBLIC_BASE_URL": "https://id.acme.example/"})
    assert settings.brand_name == "Portico"
    assert settings.brand_logo_url == "https://id.acme.example/brand/logo"
    settings = load(NotifierSettings, {"BRAND_LOGO": "/etc/portico/logo.png"})
    assert settings.brand_logo_url == "http://127.0.0.1:8001/brand/logo"
    settings = load(NotifierSettings, {"BRAND_LOGO": "https://cdn.acme.example/l.png"})
    assert settings.brand_logo_url == "https://cdn.acme.example/l.png"

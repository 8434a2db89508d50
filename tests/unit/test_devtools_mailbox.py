"""`iamctl mail list` and `iamctl mail show` read what the SMTP sink saved."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage

import pytest
from click.testing import CliRunner

from services.cli import main as iamctl
from services.devtools import smtp_sink


def _save(directory, *, to, subject, text="", html=None, when, date_header=True, message_id=None):
    message = EmailMessage()
    message["From"] = "no-reply@portico.test"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = message_id or f"<{subject.replace(' ', '')}@portico.test>"
    if date_header:
        message["Date"] = when.strftime("%a, %d %b %Y %H:%M:%S +0000")
    message.set_content(text)
    if html:
        message.add_alternative(html, subtype="html")
    name = smtp_sink.message_name(when)
    (directory / f"{name}.eml").write_bytes(message.as_bytes())
    return name


@pytest.fixture
def mail_dir(tmp_path):
    directory = tmp_path / "mail"
    directory.mkdir()
    return directory


def run(*args, env=None):
    return CliRunner().invoke(iamctl, ["mail", *args], env=env)


def test_list_shows_newest_first_with_id_date_to_and_subject(mail_dir):
    older = _save(mail_dir, to="ada@example.com", subject="Confirm your email",
                  when=datetime(2025, 3, 1, 9, 0, tzinfo=UTC))
    newer = _save(mail_dir, to="bob@example.com", subject="Welcome to Portico",
                  when=datetime(2025, 3, 2, 10, 30, tzinfo=UTC))
    (mail_dir / ".half-written.eml.part").write_bytes(b"Subject: trunc")

    result = run("--dir", str(mail_dir), "list")

    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].split()[:3] == [newer, "2025-03-02T10:30:00+00:00", "bob@example.com"]
    assert lines[0].endswith("Welcome to Portico")
    assert lines[1].startswith(older)
    assert "ada@example.com" in lines[1] and lines[1].endswith("Confirm your email")


def test_list_reads_mail_dir_from_the_environment(mail_dir):
    _save(mail_dir, to="ada@example.com", subject="From env", when=datetime.now(UTC))
    result = run("list", env={"MAIL_DIR": str(mail_dir)})
    assert result.exit_code == 0, result.output
    assert "From env" in result.output


def test_list_of_an_empty_mailbox_says_so(tmp_path):
    result = run("--dir", str(tmp_path / "nothing-yet"), "list")
    assert result.exit_code == 0
    assert "no messages" in result.output


def test_show_prints_headers_and_the_decoded_plain_text(mail_dir):
    name = _save(mail_dir, to="ada@example.com", subject="Votre code d'accès",
                 text="Código: ñandú ✓\nhttp://127.0.0.1:8001/activate\n",
                 html="<p>Código HTML</p>", when=datetime.now(UTC), message_id="<abc@portico.test>")

    result = run("--dir", str(mail_dir), "show", name)

    assert result.exit_code == 0, result.output
    assert "Message-ID: <abc@portico.test>" in result.output
    assert "To: ada@example.com" in result.output
    assert "Subject: Votre code d'accès" in result.output
    assert "Código: ñandú ✓" in result.output
    assert "http://127.0.0.1:8001/activate" in result.output
    assert "<p>" not in result.output


def test_show_html_prints_the_html_part(mail_dir):
    name = _save(mail_dir, to="ada@example.com", subject="Welcome", text="plain body",
                 html="<p>Código HTML</p>", when=datetime.now(UTC))
    result = run("--dir", str(mail_dir), "show", "--html", name)
    assert result.exit_code == 0, result.output
    assert "<p>Código HTML</p>" in result.output
    assert "plain body" not in result.output


def test_show_accepts_the_short_id(mail_dir):
    name = _save(mail_dir, to="ada@example.com", subject="Short", text="body by short id",
                 when=datetime.now(UTC))
    result = run("--dir", str(mail_dir), "show", name.rsplit("-", 1)[1])
    assert result.exit_code == 0, result.output
    assert "body by short id" in result.output


def test_show_without_date_header_falls_back_to_the_arrival_time(mail_dir):
    _save(mail_dir, to="ada@example.com", subject="Undated", when=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
          date_header=False)
    result = run("--dir", str(mail_dir), "list")
    assert "2025-01-02T03:04:05Z" in result.output


def test_show_of_an_unknown_id_fails_with_one_clear_line(mail_dir):
    result = run("--dir", str(mail_dir), "show", "nope")
    assert result.exit_code == 1
    assert "no message 'nope'" in result.output


def test_show_html_of_a_plain_only_message_says_there_is_none(mail_dir):
    name = _save(mail_dir, to="ada@example.com", subject="Plain", text="only text", when=datetime.now(UTC))
    result = run("--dir", str(mail_dir), "show", "--html", name)
    assert result.exit_code == 1
    assert "has no HTML part" in result.output

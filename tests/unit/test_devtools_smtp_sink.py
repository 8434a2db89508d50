"""The SMTP sink saves every message it accepts as one complete .eml file."""

from __future__ import annotations

import os
import smtplib
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import make_msgid

import pytest

from services.devtools import mailbox, smtp_sink
from tests.support import free_port


@pytest.fixture
def sink(tmp_path):
    port = free_port()
    controller = smtp_sink.make_controller("127.0.0.1", port, tmp_path / "mail")
    controller.start()
    yield port, tmp_path / "mail"
    controller.stop()


def _message(message_id: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Portico <no-reply@portico.test>"
    message["To"] = "ada@example.com"
    message["Subject"] = "Confirm your email — Portico"
    message["Message-ID"] = message_id
    message.set_content("Hello Ada,\nconfirm here: http://127.0.0.1:8001/verify/abc\n")
    message.add_alternative("<p>Hello Ada</p>", subtype="html")
    return message


def test_a_message_sent_with_smtplib_is_saved_whole_with_its_message_id(sink):
    port, directory = sink
    message_id = make_msgid(domain="portico.test")

    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.send_message(_message(message_id), to_addrs=["ada@example.com", "audit@example.com"])

    files = sorted(directory.iterdir())
    assert len(files) == 1
    saved = files[0]
    assert saved.suffix == ".eml"
    assert not saved.name.startswith(".")
    parsed = BytesParser(policy=policy.default).parsebytes(saved.read_bytes())
    assert parsed["Message-ID"] == message_id
    assert parsed["Subject"] == "Confirm your email — Portico"
    assert parsed["X-RcptTo"] == "ada@example.com, audit@example.com"
    assert "confirm here: http://127.0.0.1:8001/verify/abc" in mailbox.body(parsed)


def test_each_message_gets_its_own_file_named_by_time_and_id(sink):
    port, directory = sink
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        for _ in range(3):
            client.send_message(_message(make_msgid(domain="portico.test")))

    names = [p.name for p in directory.iterdir()]
    assert len(names) == 3
    for name in names:
        stamp, short_id = name[: -len(".eml")].rsplit("-", 1)
        assert stamp.endswith("Z") and "T" in stamp
        assert len(short_id) == 8


def test_a_file_appears_only_complete_under_its_final_name(tmp_path, monkeypatch):
    content = b"Subject: hi\r\nMessage-ID: <1@portico.test>\r\n\r\n" + b"x" * 100_000
    seen = {}
    real_replace = os.replace

    def checking_replace(src, dst):
        seen["final_existed_before"] = os.path.exists(dst)
        seen["partial_was_hidden"] = os.path.basename(src).startswith(".")
        with open(src, "rb") as handle:
            seen["partial_content"] = handle.read()
        # A reader listing the mailbox now must not see the partial file.
        seen["listed_before_rename"] = mailbox.message_ids(tmp_path)
        real_replace(src, dst)

    monkeypatch.setattr(smtp_sink.os, "replace", checking_replace)
    path = smtp_sink.save_message(tmp_path, content)

    assert seen == {"final_existed_before": False, "partial_was_hidden": True,
                    "partial_content": content, "listed_before_rename": []}
    assert path.read_bytes() == content
    assert [p.name for p in tmp_path.iterdir()] == [path.name]

"""The SMTP side of delivery: one connection per round, failures sorted into temporary
and permanent, and the optional "was this Message-ID already delivered?" check."""

from __future__ import annotations

import contextlib
import re
import smtplib
import ssl
from collections.abc import Callable
from email.message import Message
from pathlib import Path

from .settings import NotifierSettings

DeliveredCheck = Callable[[str], bool]


class SendFailure(Exception):
    """The server did not take the message. ``temporary``: try again later."""

    def __init__(self, temporary: bool, code: int | None, error: str) -> None:
        super().__init__(error)
        self.temporary = temporary
        self.code = code
        self.error = error


def classify(exc: Exception) -> SendFailure:
    """4xx, lost connections and timeouts are temporary; 5xx replies are permanent.

    An authentication failure is treated as temporary: it is the notifier's own
    configuration that is wrong, not the message, so the queue waits for the fix.
    """
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, reply = next(iter(exc.recipients.values()), (None, b""))
        return _reply_failure(code, reply)
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return SendFailure(True, exc.smtp_code, f"SMTP authentication failed ({exc.smtp_code})")
    if isinstance(exc, smtplib.SMTPResponseException):
        return _reply_failure(exc.smtp_code, exc.smtp_error)
    return SendFailure(True, None, f"{type(exc).__name__}: {exc}"[:500])


def _reply_failure(code: int | None, reply: bytes | str) -> SendFailure:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    permanent = code is not None and 500 <= code < 600
    return SendFailure(not permanent, code, f"{code} {text}".strip()[:500])


class SmtpTransport:
    """Sends through the configured server; reconnects after any failure."""

    def __init__(self, settings: NotifierSettings) -> None:
        self.settings = settings
        self._conn: smtplib.SMTP | None = None

    def _open(self) -> smtplib.SMTP:
        s = self.settings
        if s.smtp_security == "ssl":
            conn: smtplib.SMTP = smtplib.SMTP_SSL(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout,
                                                  context=ssl.create_default_context())
        else:
            conn = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout)
            if s.smtp_security == "starttls":
                conn.ehlo()
                conn.starttls(context=ssl.create_default_context())
                conn.ehlo()
        if s.smtp_username:
            conn.login(s.smtp_username, s.smtp_password)
        return conn

    def send(self, message: Message, sender: str, recipient: str) -> None:
        """Hand ``message`` to the server, or raise :class:`SendFailure`."""
        try:
            if self._conn is None:
                self._conn = self._open()
            self._conn.send_message(message, from_addr=sender, to_addrs=[recipient])
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise classify(exc) from None

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                conn.quit()
            with contextlib.suppress(OSError):
                conn.close()


def probe(settings: NotifierSettings, timeout: float = 2.0) -> bool:
    """True when the SMTP server answers its greeting and NOOP within ``timeout``."""
    s = settings
    try:
        factory = smtplib.SMTP_SSL if s.smtp_security == "ssl" else smtplib.SMTP
        with factory(s.smtp_host, s.smtp_port, timeout=min(timeout, s.smtp_timeout)) as conn:
            code, _ = conn.noop()
            return code == 250
    except (smtplib.SMTPException, OSError):
        return False


def never_delivered(_message_id: str) -> bool:
    """The default check: no way to ask the server, so an interrupted send is repeated."""
    return False


_MESSAGE_ID = re.compile(rb"^message-id:\s*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)


class MailDirCheck:
    """Looks for a Message-ID among the ``.eml`` files a sink saved (the dev mailbox).

    Only the headers (first 16 KiB) of each file are read.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def __call__(self, message_id: str) -> bool:
        if not self.directory.is_dir():
            return False
        wanted = message_id.encode()
        for path in self.directory.glob("*.eml"):
            with contextlib.suppress(OSError), open(path, "rb") as handle:
                head = handle.read(16384).split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
                if any(m == wanted for m in _MESSAGE_ID.findall(head)):
                    return True
        return False


def delivered_check(settings: NotifierSettings) -> DeliveredCheck:
    return MailDirCheck(settings.delivered_check_dir) if settings.delivered_check_dir else never_delivered

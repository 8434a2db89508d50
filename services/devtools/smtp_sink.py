"""A local SMTP server that accepts every message and saves it as a file.

``python -m services.devtools.smtp_sink --host 127.0.0.1 --port 8025 --dir var/mail``

Each message becomes ``<dir>/<UTC timestamp>-<short id>.eml``: the bytes the
client sent (its ``Message-ID`` included), preceded by ``X-MailFrom`` and
``X-RcptTo`` headers carrying the SMTP envelope, so a Bcc recipient stays
visible. A file is written under a hidden temporary name and renamed into
place, so a reader never sees half a message.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiosmtpd.controller import Controller

from .mailbox import default_mail_dir

log = logging.getLogger("portico.smtp_sink")

TIMESTAMP_FORMAT = "%Y%m%dT%H%M%S.%fZ"


def message_name(now: datetime | None = None) -> str:
    """``20250101T120000.123456Z-1a2b3c4d``: sorts by arrival time, unique per message."""
    stamp = (now or datetime.now(UTC)).strftime(TIMESTAMP_FORMAT)
    return f"{stamp}-{uuid.uuid4().hex[:8]}"


def save_message(directory: Path, content: bytes) -> Path:
    """Write ``content`` to a new ``.eml`` file in ``directory`` atomically; return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    name = message_name()
    final = directory / f"{name}.eml"
    partial = directory / f".{name}.eml.part"
    with open(partial, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, final)
    return final


class SaveToDirectory:
    """aiosmtpd handler: every accepted message is saved with :func:`save_message`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd hook name
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8")
        envelope_headers = (
            f"X-MailFrom: {envelope.mail_from}\r\n"
            f"X-RcptTo: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        path = save_message(self.directory, envelope_headers + content)
        log.info("saved message for %d recipient(s) to %s", len(envelope.rcpt_tos), path.name)
        return "250 Message accepted for delivery"


def make_controller(host: str, port: int, directory: Path) -> Controller:
    """A started-on-demand aiosmtpd controller saving into ``directory``."""
    return Controller(SaveToDirectory(directory), hostname=host, port=port)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Save every email sent to this SMTP server as a file.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--dir", default=None, help="default: MAIL_DIR (DevSettings)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every connection

    directory = Path(args.dir or default_mail_dir()).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    controller = make_controller(args.host, args.port, directory)
    controller.start()
    log.info("SMTP sink on %s:%d saving to %s", args.host, args.port, directory)
    try:
        stop.wait()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()

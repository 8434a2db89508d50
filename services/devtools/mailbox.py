"""Read the messages the SMTP sink saved (``var/mail/*.eml``).

A message's id is its file name without ``.eml``
(``20250101T120000.123456Z-1a2b3c4d``); :func:`find` also accepts the short id
after the dash, or any unique prefix of the name.
"""

from __future__ import annotations

from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path

from services.common.config import load_or_exit

from .settings import DevSettings

SUFFIX = ".eml"


def default_mail_dir() -> Path:
    """``MAIL_DIR``, else ``$PORTICO_VAR_DIR/mail``, else ``var/mail`` (``DevSettings``)."""
    return Path(load_or_exit(DevSettings).mail_dir)


class MessageNotFound(LookupError):
    """No saved message, or more than one, matches the id asked for."""


@dataclass(frozen=True)
class Summary:
    id: str
    date: str
    to: str
    subject: str


def message_ids(directory: Path) -> list[str]:
    """Ids of the saved messages, newest first. Half-written files are never listed."""
    if not directory.is_dir():
        return []
    names = [p.name[: -len(SUFFIX)] for p in directory.iterdir()
             if p.name.endswith(SUFFIX) and not p.name.startswith(".")]
    return sorted(names, reverse=True)


def read(directory: Path, message_id: str) -> EmailMessage:
    with open(directory / f"{message_id}{SUFFIX}", "rb") as handle:
        return BytesParser(policy=policy.default).parse(handle)


def find(directory: Path, wanted: str) -> str:
    """The full id of the one message matching ``wanted`` (full id, short id or name prefix)."""
    ids = message_ids(directory)
    if wanted in ids:
        return wanted
    matches = [i for i in ids if i.startswith(wanted) or i.rsplit("-", 1)[-1] == wanted]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise MessageNotFound(f"no message {wanted!r} in {directory}")
    raise MessageNotFound(f"{wanted!r} matches {len(matches)} messages; give more of the id")


def summarize(directory: Path, message_id: str) -> Summary:
    message = read(directory, message_id)
    return Summary(
        id=message_id,
        date=_date(message, message_id),
        to=str(message.get("To") or message.get("X-RcptTo") or ""),
        subject=str(message.get("Subject") or ""),
    )


def summaries(directory: Path) -> list[Summary]:
    """One :class:`Summary` per saved message, newest first."""
    return [summarize(directory, message_id) for message_id in message_ids(directory)]


def body(message: EmailMessage, *, html: bool = False) -> str | None:
    """The decoded text/plain part (or text/html with ``html=True``); None if there is none."""
    part = message.get_body(preferencelist=("html",) if html else ("plain",))
    if part is None:
        return None
    return part.get_content()


def _date(message: EmailMessage, message_id: str) -> str:
    raw = message.get("Date")
    if raw:
        try:
            return parsedate_to_datetime(str(raw)).isoformat(timespec="seconds")
        except (TypeError, ValueError):
            return str(raw)
    # No Date header: the file name carries the time the sink received it.
    stamp = message_id.split("-", 1)[0]
    return f"{stamp[0:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]}Z"

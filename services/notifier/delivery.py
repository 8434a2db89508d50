"""The sender loop: takes due messages, sends them over SMTP, records the outcome.

Contract
--------
* A message is claimed (``queued``/``retrying`` → ``sending``, attempts + 1) in one
  short transaction — ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several senders
  never take the same row — then sent outside any transaction, then settled in another.
* Settled: accepted → ``sent`` (secret bodies purged); temporary failure → ``retrying``
  after an exponential, jittered delay, or ``dead`` once ``NOTIFY_MAX_ATTEMPTS`` tries
  were made; permanent failure (5xx) → ``dead`` at once. The last error is kept.
* A sender that dies between the SMTP server's "250" and the settle leaves the row in
  ``sending``. After ``NOTIFY_SENDING_TIMEOUT_SECONDS`` it goes back to ``retrying``;
  every retry first asks ``already_delivered(message_id)`` and, if the server knows the
  Message-ID, records ``sent`` without sending. Without such a check a retry re-sends
  with the same Message-ID, which a de-duplicating MTA or mailbox collapses to one.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

from sqlalchemy import select

from services.common.db import Database
from services.common.events import utcnow

from .messages import BodyVault, bodies, purge_secret_bodies
from .models import AttemptOutcome, DeliveryAttempt, MessageStatus, OutgoingMessage
from .settings import NotifierSettings
from .smtp import DeliveredCheck, SendFailure, SmtpTransport, delivered_check

log = logging.getLogger("portico.notifier.delivery")

DUE_STATES = (MessageStatus.QUEUED, MessageStatus.RETRYING)


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def backoff_delay(attempts: int, base: float, cap: float, rng: Callable[[], float] = random.random) -> float:
    """Seconds before try ``attempts + 1``: base · 2^(attempts-1), capped, ±25 % jitter."""
    delay = min(cap, base * 2 ** max(attempts - 1, 0))
    return delay * (0.75 + 0.5 * rng())


def build_email(message: OutgoingMessage, text: str, html: str, sender: str) -> EmailMessage:
    """The multipart/alternative email of ``message``, with its stable Message-ID."""
    email = EmailMessage()
    email["From"] = sender
    email["To"] = message.recipient
    email["Subject"] = message.subject
    email["Date"] = format_datetime(_aware(message.created_at) or utcnow())
    email["Message-ID"] = message.message_id
    email["Auto-Submitted"] = "auto-generated"
    if message.tracking_number:
        email["X-Portico-Tracking-Number"] = message.tracking_number
    email["Content-Language"] = message.language
    email.set_content(text)
    email.add_alternative(html, subtype="html")
    return email


class Sender:
    """A Runnable (``run(stop)``) that delivers the queue; several may run at once."""

    def __init__(self, db: Database, settings: NotifierSettings, *,
                 transport: SmtpTransport | None = None,
                 already_delivered: DeliveredCheck | None = None) -> None:
        self.db = db
        self.settings = settings
        self.transport = transport or SmtpTransport(settings)
        self.already_delivered = already_delivered or delivered_check(settings)
        self.vault = BodyVault(settings.event_sealing_key)

    # -- claiming -----------------------------------------------------------------------

    def recover_stale(self) -> int:
        """Put messages stuck in ``sending`` past the timeout back to ``retrying``."""
        now = utcnow()
        cutoff = now - timedelta(seconds=self.settings.sending_timeout)
        with self.db.transaction() as session:
            stuck = session.scalars(
                select(OutgoingMessage)
                .where(OutgoingMessage.status == MessageStatus.SENDING,
                       OutgoingMessage.sending_since < cutoff)
                .with_for_update(skip_locked=True)).all()
            for message in stuck:
                session.add(DeliveryAttempt(message_pk=message.id, number=message.attempts,
                                            outcome=AttemptOutcome.INTERRUPTED,
                                            error="the sender stopped before recording the outcome"))
                message.move_to(MessageStatus.RETRYING)
                message.next_attempt_at = now
                message.sending_since = None
                message.last_error = "interrupted while sending"
        if stuck:
            log.warning("recovered interrupted sends", extra={"count": len(stuck)})
        return len(stuck)

    def claim(self, limit: int | None = None) -> list[int]:
        """Take up to ``limit`` due messages into ``sending``; their ids."""
        now = utcnow()
        with self.db.transaction() as session:
            due = session.scalars(
                select(OutgoingMessage)
                .where(OutgoingMessage.status.in_(DUE_STATES),
                       OutgoingMessage.next_attempt_at <= now)
                .order_by(OutgoingMessage.next_attempt_at, OutgoingMessage.id)
                .limit(limit or self.settings.batch_size)
                .with_for_update(skip_locked=True)).all()
            for message in due:
                message.move_to(MessageStatus.SENDING)
                message.sending_since = now
                message.attempts += 1
            return [m.id for m in due]

    # -- sending ------------------------------------------------------------------------

    def deliver_due(self) -> int:
        """Claim one round of due messages and try each; the number tried."""
        ids = self.claim()
        try:
            for pk in ids:
                self._deliver(pk)
        finally:
            self.transport.close()
        return len(ids)

    def _deliver(self, pk: int) -> None:
        with self.db.read() as session:
            message = session.get(OutgoingMessage, pk)
            if message is None or message.status != MessageStatus.SENDING:
                return
            retry = message.attempts > 1
            message_id = message.message_id
            try:
                text, html = bodies(message, self.vault)
            except ValueError as exc:
                self._settle(pk, AttemptOutcome.PERMANENT_FAILURE, error=str(exc))
                return
            email = build_email(message, text, html, self.settings.mail_from)
            recipient = message.recipient
        del text, html
        if retry and self._known_delivered(message_id):
            self._settle(pk, AttemptOutcome.ALREADY_DELIVERED)
            return
        try:
            self.transport.send(email, self.settings.mail_from, recipient)
        except SendFailure as failure:
            outcome = (AttemptOutcome.TEMPORARY_FAILURE if failure.temporary
                       else AttemptOutcome.PERMANENT_FAILURE)
            self._settle(pk, outcome, code=failure.code, error=failure.error)
            return
        self._settle(pk, AttemptOutcome.SENT, code=250)

    def _known_delivered(self, message_id: str) -> bool:
        try:
            return bool(self.already_delivered(message_id))
        except Exception as exc:  # the check is advisory: fall back to sending again
            log.warning("delivered-check failed", extra={"error_type": type(exc).__name__})
            return False

    def _settle(self, pk: int, outcome: AttemptOutcome, *, code: int | None = None,
                error: str | None = None) -> None:
        now = utcnow()
        with self.db.transaction() as session:
            message = session.get(OutgoingMessage, pk, with_for_update=True)
            if message is None or message.status != MessageStatus.SENDING:
                return  # recovered by another sender meanwhile; its retry decides
            session.add(DeliveryAttempt(message_pk=pk, number=message.attempts, outcome=outcome,
                                        smtp_code=code, error=error))
            message.sending_since = None
            if outcome in (AttemptOutcome.SENT, AttemptOutcome.ALREADY_DELIVERED):
                message.move_to(MessageStatus.SENT)
                message.sent_at = now
                message.last_error = None
                purge_secret_bodies(message)
            elif (outcome is AttemptOutcome.TEMPORARY_FAILURE
                  and message.attempts < self.settings.max_attempts):
                message.move_to(MessageStatus.RETRYING)
                message.last_error = error
                message.next_attempt_at = now + timedelta(seconds=backoff_delay(
                    message.attempts, self.settings.backoff_base, self.settings.backoff_max))
            else:
                message.move_to(MessageStatus.DEAD)
                message.last_error = error
                message.next_attempt_at = None
            template, event_id, status = message.template, message.event_id, message.status
        level = logging.INFO if status == MessageStatus.SENT else logging.WARNING
        log.log(level, "message %s", status.value, extra={
            "message_pk": pk, "template": template, "event_id": event_id,
            "outcome": outcome.value, "smtp_code": code})

    # -- the loop -----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Deliver until ``stop`` is set; the message in hand is finished first."""
        next_recovery = 0.0
        while not stop.is_set():
            try:
                if time.monotonic() >= next_recovery:
                    self.recover_stale()
                    next_recovery = time.monotonic() + min(30.0, self.settings.sending_timeout / 2)
                tried = self.deliver_due()
            except Exception as exc:  # the database is away: keep the worker alive
                log.warning("sender round failed", extra={"error_type": type(exc).__name__})
                stop.wait(min(5.0, self.settings.poll_interval * 10))
                continue
            if tried == 0:
                stop.wait(self.settings.poll_interval)

"""The sender loop: takes due messages, sends them over SMTP, records the outcome.

Contract
--------
* A round claims up to ``NOTIFY_BATCH_SIZE`` messages (``queued``/``retrying`` →
  ``sending``, attempts + 1) in one short transaction — ``FOR UPDATE SKIP LOCKED`` on
  PostgreSQL, so several senders never take the same row — loads them in one query,
  sends them over one SMTP connection outside any transaction, and settles their
  outcomes in batches (one transaction every ``SETTLE_EVERY`` seconds and at the end).
* Settled: accepted → ``sent`` (secret bodies purged); temporary failure → ``retrying``
  after an exponential, jittered delay, or ``dead`` once ``NOTIFY_MAX_ATTEMPTS`` tries
  were made; permanent failure (5xx) → ``dead`` at once. The last error is kept.
* A sender that dies between the SMTP server's "250" and the settle leaves the row in
  ``sending`` (at most ``SETTLE_EVERY`` seconds' worth of messages). After ``NOTIFY_SENDING_TIMEOUT_SECONDS`` it goes back to ``retrying``;
  every retry first asks ``already_delivered(message_id)`` and, if the server knows the
  Message-ID, records ``sent`` without sending. Without such a check a retry re-sends
  with the same Message-ID, which a de-duplicating MTA or mailbox collapses to one.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import format_datetime

from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.db import Database
from services.common.events import utcnow
from services.common.metrics import counter
from services.common.retry import backoff_delay

from .messages import BodyVault, bodies, purge_secret_bodies
from .models import AttemptOutcome, DeliveryAttempt, MessageStatus, OutgoingMessage
from .settings import NotifierSettings
from .smtp import DeliveredCheck, SendFailure, SmtpTransport, delivered_check

log = logging.getLogger("portico.notifier.delivery")

DUE_STATES = (MessageStatus.QUEUED, MessageStatus.RETRYING)


def build_email(message: OutgoingMessage, text: str, html: str, sender: str) -> Message:
    """The multipart/alternative email of ``message``, with its stable Message-ID.

    Built with the compat32 MIME classes: the ``email.policy.default`` header objects
    cost milliseconds per message, a large share of a sender's time.
    """
    email = MIMEMultipart("alternative", policy=_UNFOLDED)
    email["From"] = sender
    email["To"] = message.recipient
    email["Subject"] = _header(message.subject)  # type: ignore[assignment]
    email["Date"] = format_datetime(message.created_at or utcnow())
    email["Message-ID"] = message.message_id
    email["Auto-Submitted"] = "auto-generated"
    if message.tracking_number:
        email["X-Portico-Tracking-Number"] = message.tracking_number
    email["Content-Language"] = message.language
    email.attach(MIMEText(text, "plain", "utf-8"))
    email.attach(MIMEText(html, "html", "utf-8"))
    return email


# Long headers (the Message-ID) stay on one line, as EmailMessage wrote them.
_UNFOLDED = compat32.clone(max_line_length=0)


def _header(value: str) -> str | Header:
    return value if value.isascii() else Header(value, "utf-8")


# Outcomes are recorded at least this often (seconds) during a round: the window in
# which a crash leaves accepted messages in ``sending`` (see the module docstring).
SETTLE_EVERY = 0.25


@dataclass(frozen=True)
class _Prepared:
    pk: int
    message_id: str
    email: Message | None
    recipient: str
    retry: bool
    error: str | None = None


@dataclass(frozen=True)
class _Outcome:
    pk: int
    outcome: AttemptOutcome
    code: int | None = None
    error: str | None = None


class InFlight:
    """The messages the senders of one process hold in ``sending`` right now.

    Their recovery must not take a sibling's message for an interrupted one just
    because its round outlasts ``NOTIFY_SENDING_TIMEOUT_SECONDS``: that would send it
    twice. Share one instance between the senders of a process.
    """

    def __init__(self) -> None:
        self._ids: set[int] = set()
        self._lock = threading.Lock()

    def add(self, ids: list[int]) -> None:
        with self._lock:
            self._ids.update(ids)

    def discard(self, ids: list[int]) -> None:
        with self._lock:
            self._ids.difference_update(ids)

    def snapshot(self) -> list[int]:
        with self._lock:
            return sorted(self._ids)


class Sender:
    """A Runnable (``run(stop)``) that delivers the queue; several may run at once."""

    def __init__(self, db: Database, settings: NotifierSettings, *,
                 transport: SmtpTransport | None = None,
                 already_delivered: DeliveredCheck | None = None,
                 in_flight: InFlight | None = None,
                 metrics: CollectorRegistry | None = None) -> None:
        self.db = db
        self.in_flight = in_flight or InFlight()
        self.settled = counter(metrics, "portico_notifier_messages_total",
                               "Delivery attempts settled, by the message's resulting status "
                               "(sent, retrying, dead)", ["status"])
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
            mine = self.in_flight.snapshot()
            stuck = session.scalars(
                select(OutgoingMessage)
                .where(OutgoingMessage.status == MessageStatus.SENDING,
                       OutgoingMessage.sending_since < cutoff,
                       OutgoingMessage.id.not_in(mine))
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
        """Claim one round of due messages and try each over one SMTP connection; the
        number tried. Outcomes are recorded in batches: every ``SETTLE_EVERY`` seconds
        and at the end of the round."""
        ids = self.claim()
        if not ids:
            return 0
        # Just claimed (sending_since = now): not stale for a sibling's recovery yet.
        self.in_flight.add(ids)
        outcomes: list[_Outcome] = []
        last_settle = time.monotonic()
        try:
            for prepared in self._prepare(ids):
                outcomes.append(self._try(prepared))
                if time.monotonic() - last_settle >= SETTLE_EVERY:
                    self._settle_many(outcomes)
                    outcomes, last_settle = [], time.monotonic()
        finally:
            self.transport.close()
            try:
                self._settle_many(outcomes)
            finally:
                self.in_flight.discard(ids)
        return len(ids)

    def _deliver(self, pk: int) -> None:
        """Try one claimed message and record the outcome (a round of one)."""
        try:
            outcomes = [self._try(prepared) for prepared in self._prepare([pk])]
        finally:
            self.transport.close()
        try:
            self._settle_many(outcomes)
        finally:
            self.in_flight.discard([pk])

    def _prepare(self, ids: list[int]) -> list[_Prepared]:
        """Load the claimed messages (one query) and build their emails."""
        prepared: list[_Prepared] = []
        with self.db.read() as session:
            messages = session.scalars(select(OutgoingMessage).where(
                OutgoingMessage.id.in_(ids), OutgoingMessage.status == MessageStatus.SENDING)
                .order_by(OutgoingMessage.id)).all()
            for message in messages:
                try:
                    text, html = bodies(message, self.vault)
                except ValueError as exc:
                    prepared.append(_Prepared(message.id, message.message_id, None, "",
                                              False, str(exc)))
                    continue
                email = build_email(message, text, html, self.settings.mail_from)
                del text, html
                prepared.append(_Prepared(message.id, message.message_id, email,
                                          message.recipient, message.attempts > 1))
        return prepared

    def _try(self, prepared: _Prepared) -> _Outcome:
        if prepared.email is None:
            return _Outcome(prepared.pk, AttemptOutcome.PERMANENT_FAILURE, None, prepared.error)
        if prepared.retry and self._known_delivered(prepared.message_id):
            return _Outcome(prepared.pk, AttemptOutcome.ALREADY_DELIVERED)
        try:
            self.transport.send(prepared.email, self.settings.mail_from, prepared.recipient)
        except SendFailure as failure:
            outcome = (AttemptOutcome.TEMPORARY_FAILURE if failure.temporary
                       else AttemptOutcome.PERMANENT_FAILURE)
            return _Outcome(prepared.pk, outcome, failure.code, failure.error)
        return _Outcome(prepared.pk, AttemptOutcome.SENT, 250)

    def _known_delivered(self, message_id: str) -> bool:
        try:
            return bool(self.already_delivered(message_id))
        except Exception as exc:  # the check is advisory: fall back to sending again
            log.warning("delivered-check failed", extra={"error_type": type(exc).__name__})
            return False

    def _settle(self, pk: int, outcome: AttemptOutcome, *, code: int | None = None,
                error: str | None = None) -> None:
        self._settle_many([_Outcome(pk, outcome, code, error)])

    def _settle_many(self, outcomes: list[_Outcome]) -> None:
        """Record the outcomes of several tries in one transaction."""
        if not outcomes:
            return
        now = utcnow()
        logged = []
        with self.db.transaction() as session:
            messages = {m.id: m for m in session.scalars(
                select(OutgoingMessage).where(OutgoingMessage.id.in_([o.pk for o in outcomes]))
                .order_by(OutgoingMessage.id).with_for_update())}
            for result in outcomes:
                message = messages.get(result.pk)
                if message is None or message.status != MessageStatus.SENDING:
                    continue  # recovered by another sender meanwhile; its retry decides
                self._apply(session, message, result, now)
                logged.append((result, message.template, message.event_id, message.status))
        for result, template, event_id, status in logged:
            self.settled.labels(status.value).inc()
            level = logging.INFO if status == MessageStatus.SENT else logging.WARNING
            log.log(level, "message %s", status.value, extra={
                "message_pk": result.pk, "template": template, "event_id": event_id,
                "outcome": result.outcome.value, "smtp_code": result.code})

    def _apply(self, session: Session, message: OutgoingMessage, result: _Outcome,
               now: datetime) -> None:
        outcome, error = result.outcome, result.error
        session.add(DeliveryAttempt(message_pk=message.id, number=message.attempts,
                                    outcome=outcome, smtp_code=result.code, error=error))
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

"""Helpers of the notifier tests: a real in-process SMTP server (aiosmtpd), the notifier and
the pieces a test drives directly, and one sample event of every emailed type. The
fixtures built on them are in tests/integration/fixtures/notifier.py.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from prometheus_client import CollectorRegistry
from sqlalchemy import select

from services.common.config import CommonSettings
from services.common.events import Consumer, Envelope, Sealer
from services.common.streams import events_stream
from services.devtools.smtp_sink import save_message
from services.notifier.delivery import Sender
from services.notifier.handlers import registry
from services.notifier.models import Base, OutgoingMessage, ProcessedEvent
from services.notifier.smtp import MailDirCheck
from tests.support import free_port

SEALING_KEY = CommonSettings.__dataclass_fields__["event_sealing_key"].metadata["default"]
TRACKING = "PTC-7K3M-9QX2-H"
SECRETS = {
    "verification_url": "https://portal.example/verify?t=SECRET-VERIFY-TOKEN-91x",
    "access_code": "SECRET-ACCESS-CODE-7Q2W",
    "reset_url": "https://portal.example/reset?t=SECRET-RESET-TOKEN-55k",
    "username": "secret-username-ana77",
}


class RecordingHandler:
    """Keeps (and saves under ``directory``) every message; ``reply`` forces an answer."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.messages: list[EmailMessage] = []
        self.reply: str | None = None
        self.delay = 0.0
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd hook
        if self.reply:
            return self.reply
        if self.delay:
            time.sleep(self.delay)
        content = envelope.original_content or envelope.content
        save_message(self.directory, content)
        with self._lock:
            self.messages.append(BytesParser(policy=policy.default).parsebytes(content))
        return "250 2.0.0 Message accepted"


class SmtpSink:
    """A real SMTP server on a free loopback port that can be stopped and started again."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.handler = RecordingHandler(directory)
        self.directory = directory
        self._controller: Controller | None = None

    def start(self) -> SmtpSink:
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def messages(self) -> list[EmailMessage]:
        return list(self.handler.messages)

    def message_id_counts(self) -> Counter[str]:
        return Counter(str(m["Message-ID"]) for m in self.messages)

    def saved_message_id_counts(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for path in self.directory.glob("*.eml"):
            with open(path, "rb") as handle:
                counts[str(BytesParser(policy=policy.default).parse(handle)["Message-ID"])] += 1
        return counts


class Notifier:
    """The notifier app and the pieces a test drives directly."""

    def __init__(self, app, redis_client, namespace: str, sink: SmtpSink) -> None:
        self.app = app
        self.ctx = app.extensions["portico"]
        self.db = self.ctx.db
        self.settings = self.ctx.settings
        self.redis = redis_client
        self.namespace = namespace
        self.sink = sink
        self.metrics = CollectorRegistry()  # what the worker would serve at /metrics
        self.sender = Sender(self.db, self.settings, already_delivered=MailDirCheck(sink.directory),
                             metrics=self.metrics)
        self.consumer = Consumer(
            self.db, redis_client, "notifier",
            [events_stream(s, namespace) for s in ("identity", "permissions", "tracking")],
            registry, ProcessedEvent, namespace=namespace, block_ms=20, claim_idle_ms=60_000)

    def publish(self, *envelopes: Envelope) -> None:
        for envelope in envelopes:
            self.redis.xadd(events_stream(envelope.source, self.namespace),
                            {"envelope": envelope.to_json()})

    def consume(self) -> int:
        total = 0
        while (settled := self.consumer.process_once()) > 0:
            total += settled
        return total

    def deliver_all(self, timeout: float = 10.0) -> None:
        """Run the sender until no message is queued, retrying or sending."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sender.deliver_due()
            if not self.pending():
                return
            time.sleep(0.02)
        raise AssertionError(f"messages still pending: {self.pending()}")

    def pending(self) -> list[tuple[int, str]]:
        with self.db.read() as session:
            return [(m.id, m.status.value) for m in session.scalars(select(OutgoingMessage))
                    if m.status.value in ("queued", "retrying", "sending")]

    def messages(self) -> list[OutgoingMessage]:
        with self.db.read() as session:
            rows = list(session.scalars(select(OutgoingMessage).order_by(OutgoingMessage.id)))
            session.expunge_all()
            return rows

    def every_stored_value(self) -> str:
        """Every row of every notifier table as text: what a database dump would show."""
        with self.db.read() as session:
            return "\n".join(str(tuple(row)) for table in Base.metadata.sorted_tables
                             for row in session.execute(select(table)))


# -- sample events ----------------------------------------------------------------------

def sealed(**secrets: str) -> str:
    return Sealer(SEALING_KEY).seal(secrets)


def person(user_id: str, lang: str, **extra: Any) -> dict[str, Any]:
    return {"user_id": user_id, "email": f"{user_id}@example.com", "given_name": f"Name-{user_id}",
            "preferred_language": lang, **extra}


def activated(user_id: str, lang: str = "en", status_changes: bool = True) -> Envelope:
    return Envelope.new("identity.user.activated", "identity", {
        **person(user_id, lang), "family_name": "Doe", "phone": "+15550100", "job_title": "AP",
        "company_id": "c1", "company_name": "ACME", "enrollment_id": "e1",
        "accounts": [{"last5": "12345", "fingerprint": "f"}],
        "notifications": {"status_changes": status_changes}}, subject=user_id,
        tracking_number=TRACKING)


def emailed_samples(lang: str) -> dict[str, Envelope]:
    """One event of every type that sends email, addressed to speakers of ``lang``.

    User-addressed events expect ``activated(u, lang)`` for u in USERS first.
    """
    enrollee = {"email": f"enrollee-{lang}@example.com", "given_name": "Ana",
                "preferred_language": lang, "enrollment_id": "e-1"}
    request = {"request_id": "r-1", "requester_id": f"req-{lang}", "target_user_id": f"tgt-{lang}",
               "entitlements": ["cards.cancel", "reports.view"], "justification": "month end",
               "principal_admin_id": f"pa-{lang}", "needs_cosign": False,
               "expires_at": "2030-01-02T03:04:05+00:00"}
    decision = {"request_id": "r-1", "requester_id": f"req-{lang}", "target_user_id": f"tgt-{lang}",
                "entitlements": ["cards.cancel"], "decided_by": f"pa-{lang}", "comment": "ok"}
    membership = {"request_id": "m-1", "user_id": f"tgt-{lang}", "company_id": "c1",
                  "company_name": "ACME", "principal_admin_id": f"pa-{lang}",
                  "newcomer_name": "Tess Newman", "accounts": ["11111"], "status": "pending",
                  "decided_by": None, "comment": None,
                  "expires_at": "2030-01-02T03:04:05+00:00"}
    decided = {**membership, "decided_by": f"pa-{lang}", "comment": "welcome"}
    user = person(f"u-{lang}", lang)
    new = Envelope.new
    return {
        "identity.enrollment.submitted": new(
            "identity.enrollment.submitted", "identity", {**enrollee, "family_name": "Doe",
                                                          "company_name": "ACME", "requires_review": True},
            tracking_number=TRACKING, sealed=sealed(verification_url=SECRETS["verification_url"])),
        "identity.access_code.issued": new(
            "identity.access_code.issued", "identity", {**enrollee, "expires_at": "2030-01-01T00:00:00+00:00",
                                                        "reissued": False},
            tracking_number=TRACKING, sealed=sealed(access_code=SECRETS["access_code"])),
        "identity.enrollment.locked": new("identity.enrollment.locked", "identity", enrollee,
                                          tracking_number=TRACKING),
        "identity.user.deactivated": new("identity.user.deactivated", "identity",
                                         {**user, "reason": "inactivity"}, subject=user["user_id"]),
        "identity.user.inactivity_warning": new("identity.user.inactivity_warning", "identity",
                                                {**user, "days_left": 10}, subject=user["user_id"]),
        "identity.user.reactivated": new("identity.user.reactivated", "identity",
                                         {**user, "actor_id": "hd-1"}, subject=user["user_id"],
                                         tracking_number=TRACKING),
        "identity.password_reset.requested": new(
            "identity.password_reset.requested", "identity",
            {**user, "expires_at": "2030-01-01T00:00:00+00:00"}, subject=user["user_id"],
            tracking_number=TRACKING, sealed=sealed(reset_url=SECRETS["reset_url"])),
        "identity.password.changed": new("identity.password.changed", "identity",
                                         {**user, "via": "reset"}, subject=user["user_id"],
                                         tracking_number=TRACKING),
        "identity.username.reminder": new("identity.username.reminder", "identity", user,
                                          subject=user["user_id"],
                                          sealed=sealed(username=SECRETS["username"])),
        "identity.contact.change_requested": new(
            "identity.contact.change_requested", "identity",
            {"user_id": user["user_id"], "new_email": f"new-{lang}@example.com",
             "old_email": user["email"], "given_name": "Ana", "preferred_language": lang},
            subject=user["user_id"], tracking_number=TRACKING,
            sealed=sealed(verification_url=SECRETS["verification_url"])),
        "permissions.request.created": new("permissions.request.created", "permissions", request,
                                           subject=f"tgt-{lang}", tracking_number=TRACKING),
        "permissions.request.reminder": new("permissions.request.reminder", "permissions", request,
                                            subject=f"tgt-{lang}", tracking_number=TRACKING),
        "permissions.request.approved": new("permissions.request.approved", "permissions", decision,
                                            subject=f"tgt-{lang}", tracking_number=TRACKING),
        "permissions.request.rejected": new("permissions.request.rejected", "permissions", decision,
                                            subject=f"tgt-{lang}", tracking_number=TRACKING),
        "permissions.request.expired": new("permissions.request.expired", "permissions", decision,
                                           subject=f"tgt-{lang}", tracking_number=TRACKING),
        "permissions.principal.changed": new(
            "permissions.principal.changed", "permissions",
            {"company_id": "c1", "old_principal_id": f"req-{lang}", "new_principal_id": f"pa-{lang}",
             "actor_id": "hd-1"}, subject=f"pa-{lang}"),
        "permissions.membership.requested": new(
            "permissions.membership.requested", "permissions", membership,
            subject=f"tgt-{lang}", company_id="c1", tracking_number=TRACKING),
        **{f"permissions.membership.{outcome}": new(
            f"permissions.membership.{outcome}", "permissions", {**decided, "status": outcome},
            subject=f"tgt-{lang}", company_id="c1", tracking_number=TRACKING)
           for outcome in ("approved", "rejected", "expired")},
        "tracking.status.changed": new(
            "tracking.status.changed", "tracking",
            {"transaction_type": "entitlement_request", "old_status": "submitted",
             "new_status": "in_review", "title_en": "Entitlement request",
             "title_es": "Solicitud de autorizaciones", "comment": ""},
            subject=f"tgt-{lang}", tracking_number=TRACKING),
    }


def sample_users(lang: str) -> list[str]:
    return [f"u-{lang}", f"req-{lang}", f"tgt-{lang}", f"pa-{lang}"]

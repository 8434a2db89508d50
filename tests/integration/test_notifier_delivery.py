"""Delivery over a real SMTP server: outages, 4xx/5xx, interrupted sends."""

from __future__ import annotations

import dataclasses
import re
import time
from datetime import timedelta

from sqlalchemy import select, update

from services.common.events import Envelope, utcnow
from services.notifier.delivery import Sender, build_email
from services.notifier.messages import BodyVault, bodies
from services.notifier.models import DeliveryAttempt, MessageStatus, OutgoingMessage
from services.notifier.smtp import SmtpTransport, never_delivered
from tests.integration.helpers.notifier import activated, person


def queue_password_notices(notifier, count: int) -> list[Envelope]:
    envelopes = [Envelope.new("identity.password.changed", "identity",
                              {**person(f"user-{i}", "en"), "via": "profile"}, subject=f"user-{i}")
                 for i in range(count)]
    notifier.publish(*envelopes)
    notifier.consume()
    return envelopes


def attempts(notifier, pk: int) -> list[DeliveryAttempt]:
    with notifier.db.read() as session:
        rows = list(session.scalars(select(DeliveryAttempt).where(DeliveryAttempt.message_pk == pk)
                                    .order_by(DeliveryAttempt.id)))
        session.expunge_all()
        return rows


def test_a_delivered_email_is_multipart_with_a_message_id_derived_from_the_event(notifier):
    (envelope,) = queue_password_notices(notifier, 1)
    notifier.deliver_all()
    (email,) = notifier.sink.messages
    (row,) = notifier.messages()
    assert re.fullmatch(rf"<{envelope.id}\.password_changed\.[0-9a-f]{{16}}@portico>",
                        str(email["Message-ID"]))
    assert str(email["Message-ID"]) == row.message_id
    assert email.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in email.iter_parts()] == ["text/plain", "text/html"]
    assert row.status == MessageStatus.SENT and row.sent_at and row.attempts == 1
    assert [a.outcome for a in attempts(notifier, row.id)] == ["sent"]


def test_smtp_down_for_a_while_then_back_delivers_every_message_exactly_once(notifier):
    queue_password_notices(notifier, 5)
    notifier.sink.stop()
    notifier.sender.deliver_due()
    rows = notifier.messages()
    assert {m.status for m in rows} == {MessageStatus.RETRYING}
    assert all(m.last_error and m.attempts == 1 and m.next_attempt_at for m in rows)
    assert notifier.sink.messages == []

    notifier.sink.start()
    time.sleep(0.1)  # past the (test-sized) backoff
    notifier.deliver_all()
    rows = notifier.messages()
    assert {m.status for m in rows} == {MessageStatus.SENT}
    assert all(m.attempts == 2 and m.last_error is None for m in rows)
    counts = notifier.sink.message_id_counts()
    assert sorted(counts) == sorted(m.message_id for m in rows)
    assert set(counts.values()) == {1}


def test_a_5xx_answer_dead_letters_the_message_at_once_with_the_error(notifier):
    queue_password_notices(notifier, 1)
    notifier.sink.handler.reply = "550 5.1.1 mailbox unavailable"
    notifier.sender.deliver_due()
    (row,) = notifier.messages()
    assert row.status == MessageStatus.DEAD and row.attempts == 1
    assert row.last_error.startswith("550") and "mailbox unavailable" in row.last_error
    assert [(a.outcome, a.smtp_code) for a in attempts(notifier, row.id)] == [
        ("permanent_failure", 550)]


def test_4xx_answers_retry_with_backoff_then_dead_letter_after_max_attempts(notifier):
    queue_password_notices(notifier, 1)
    notifier.sink.handler.reply = "451 4.3.0 try again later"
    notifier.sender.deliver_due()
    (row,) = notifier.messages()
    assert row.status == MessageStatus.RETRYING and row.attempts == 1
    # Not due before its backoff has passed.
    with notifier.db.transaction() as session:
        session.execute(update(OutgoingMessage).values(next_attempt_at=utcnow() + timedelta(hours=1)))
    assert notifier.sender.deliver_due() == 0
    with notifier.db.transaction() as session:
        session.execute(update(OutgoingMessage).values(next_attempt_at=utcnow()))
    deadline = time.monotonic() + 5
    while notifier.pending() and time.monotonic() < deadline:
        notifier.sender.deliver_due()
        time.sleep(0.02)
    (row,) = notifier.messages()
    assert row.status == MessageStatus.DEAD
    assert row.attempts == notifier.settings.max_attempts == 3
    assert row.last_error.startswith("451")
    assert [a.outcome for a in attempts(notifier, row.id)] == ["temporary_failure"] * 3
    assert notifier.sink.messages == []
    settled = {status: notifier.metrics.get_sample_value(
        "portico_notifier_messages_total", {"status": status}) for status in ("sent", "retrying", "dead")}
    assert settled == {"sent": None, "retrying": 2.0, "dead": 1.0}


def test_backoff_delays_grow_between_attempts(notifier):
    queue_password_notices(notifier, 1)
    notifier.sink.stop()
    settings = dataclasses.replace(notifier.settings, backoff_base=10.0, backoff_max=1000.0)
    sender = Sender(notifier.db, settings)
    delays = []
    for _ in range(2):
        with notifier.db.transaction() as session:
            session.execute(update(OutgoingMessage).values(next_attempt_at=utcnow()))
        before = utcnow()
        sender.deliver_due()
        (row,) = notifier.messages()
        assert row.status == MessageStatus.RETRYING
        delays.append((row.next_attempt_at.replace(tzinfo=None) - before.replace(tzinfo=None))
                      .total_seconds())
    assert 7.5 <= delays[0] <= 13.5  # 10 s ± 25 % jitter (+ the round's own time)
    assert 15 <= delays[1] <= 26


def test_a_send_interrupted_after_the_server_accepted_it_is_not_sent_again(notifier):
    queue_password_notices(notifier, 1)
    (pk,) = notifier.sender.claim()
    (row,) = notifier.messages()
    # The sender "dies" right after the server said 250: the row stays in sending.
    transport = SmtpTransport(notifier.settings)
    text, html = bodies(row, BodyVault(notifier.settings.event_sealing_key))
    transport.send(build_email(row, text, html, notifier.settings.mail_from),
                   notifier.settings.mail_from, row.recipient)
    transport.close()
    assert notifier.sender.recover_stale() == 0  # not stale yet
    with notifier.db.transaction() as session:
        session.execute(update(OutgoingMessage).values(sending_since=utcnow() - timedelta(hours=1)))
    assert notifier.sender.recover_stale() == 1
    notifier.deliver_all()

    (row,) = notifier.messages()
    assert row.status == MessageStatus.SENT and row.attempts == 2
    assert notifier.sink.message_id_counts() == {row.message_id: 1}
    assert [a.outcome for a in attempts(notifier, pk)] == ["interrupted", "already_delivered"]


def test_without_a_delivered_check_an_interrupted_send_is_repeated_with_the_same_message_id(notifier):
    queue_password_notices(notifier, 1)
    notifier.sender.claim()
    with notifier.db.transaction() as session:
        session.execute(update(OutgoingMessage).values(sending_since=utcnow() - timedelta(hours=1)))
    sender = Sender(notifier.db, notifier.settings, already_delivered=never_delivered)
    sender.recover_stale()
    sender.deliver_due()
    sender.deliver_due()
    (row,) = notifier.messages()
    assert row.status == MessageStatus.SENT
    assert notifier.sink.message_id_counts() == {row.message_id: 1}


def test_two_senders_racing_send_each_message_once(notifier):
    import threading

    queue_password_notices(notifier, 30)
    senders = [Sender(notifier.db, notifier.settings) for _ in range(3)]
    threads = [threading.Thread(target=lambda s=s: [s.deliver_due() for _ in range(10)])
               for s in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    notifier.deliver_all()
    assert set(notifier.sink.message_id_counts().values()) == {1}
    assert len(notifier.sink.messages) == 30


def test_the_sender_loop_runs_until_stopped(notifier):
    import threading

    queue_password_notices(notifier, 3)
    stop = threading.Event()
    thread = threading.Thread(target=notifier.sender.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 5
    while len(notifier.sink.messages) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert len(notifier.sink.messages) == 3


def test_the_security_email_goes_out_while_an_activated_user_opted_out(notifier):
    notifier.publish(activated("u-x", "es", status_changes=False))
    notifier.consume()
    notifier.publish(Envelope.new(
        "identity.user.inactivity_warning", "identity", {**person("u-x", "es"), "days_left": 3},
        subject="u-x"))
    notifier.consume()
    notifier.deliver_all()
    (email,) = notifier.sink.messages
    assert "3 días" in str(email["Subject"])


def test_one_consumer_batch_queues_as_many_messages_as_one_event_at_a_time(notifier):
    """A batch is handled without a flush per event: a user added to the read model by an
    earlier event of the batch is found by a later one, and nothing is queued twice."""
    from services.notifier.handlers import registry

    users = ["batch-a", "batch-b"]
    batch = [activated(u) for u in users]
    batch += [Envelope.new("identity.password.changed", "identity",
                           {**person(u, "en"), "via": "profile"}, subject=u) for u in users]
    batch.append(Envelope.new("tracking.status.changed", "tracking", {
        "transaction_type": "entitlement_request", "old_status": "submitted",
        "new_status": "approved", "title_en": "Entitlement request", "title_es": "Solicitud",
        "comment": ""}, subject="batch-b", tracking_number="PTC-7K3M-9QX2-H"))
    with notifier.db.transaction() as session:
        registry.handle_all(session, batch)
    with notifier.db.transaction() as session:
        registry.handle_all(session, batch[2:4])  # the same events again: nothing more
    rows = notifier.messages()
    assert sorted((r.template, r.recipient) for r in rows) == [
        ("password_changed", "batch-a@example.com"), ("password_changed", "batch-b@example.com"),
        ("status_changed", "batch-b@example.com")]


def test_recovery_never_takes_a_message_a_sibling_sender_is_still_sending(notifier):
    from services.notifier.delivery import InFlight

    queue_password_notices(notifier, 1)
    shared = InFlight()
    busy, recovering = (Sender(notifier.db, notifier.settings, in_flight=shared)
                        for _ in range(2))
    ids = busy.claim()
    shared.add(ids)  # what deliver_due does for the length of its round
    with notifier.db.transaction() as session:  # a round longer than the sending timeout
        session.execute(update(OutgoingMessage).values(sending_since=utcnow() - timedelta(hours=1)))
    assert recovering.recover_stale() == 0
    shared.discard(ids)  # the sender died without settling: now it is an interrupted send
    assert recovering.recover_stale() == 1

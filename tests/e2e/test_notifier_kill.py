"""Kill -9 the notifier worker in the middle of a burst of 500 enrollments, start a new
one: every confirmation email arrives exactly once and every enrollment reaches tracking
(issue 10, "Across real processes")."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import select

from services.common.db import Database
from services.tracking.models import Transaction
from tests.e2e.journey import TIMEOUT, enrollment_body, eventually, read_mail

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

BURST = 500
KILL_AFTER_POSTED = 150  # enrollments accepted before the kill
KILL_AFTER_MAILED = 10  # ... and confirmation emails already delivered
CONFIRMATION = "Confirm your email"


def confirmations(mail_dir, wanted: set[str]) -> list:
    return [m for m in read_mail(mail_dir) if CONFIRMATION in m.subject and m.to in wanted]


def tracked_numbers(tracking_db: Database, numbers: set[str]) -> set[str]:
    with tracking_db.read() as session:
        return set(session.scalars(select(Transaction.tracking_number)
                                   .where(Transaction.tracking_number.in_(numbers))))


def test_a_killed_notifier_worker_loses_and_duplicates_no_email(start_suite):
    suite = start_suite(ENROLLMENT_RATE_LIMIT_IP="100000 per minute",
                        ENROLLMENT_RATE_LIMIT_TARGET="100 per minute",
                        WORKER_CLAIM_IDLE_MS="2000",
                        # Messages the killed worker had claimed ("sending") are retried
                        # after this, with the same Message-ID; the sink check
                        # (NOTIFY_DELIVERED_CHECK_DIR, set by make run) stops a second send.
                        NOTIFY_SENDING_TIMEOUT_SECONDS="10")
    identity = suite.url("identity")
    emails = [f"burst{i:03d}@example.com" for i in range(BURST)]
    wanted = set(emails)
    numbers: dict[str, str] = {}
    lock = threading.Lock()
    http = threading.local()

    def submit(email: str) -> None:
        session = getattr(http, "session", None) or requests.Session()
        http.session = session
        answer = session.post(f"{identity}/v1/enrollments", timeout=TIMEOUT,
                              json=enrollment_body(email, "Burst"))
        assert answer.status_code == 201, answer.text
        with lock:
            numbers[email] = answer.json()["tracking_number"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(submit, email) for email in emails]
        eventually(lambda: len(numbers) >= KILL_AFTER_POSTED
                   and len(confirmations(suite.mail_dir, wanted)) >= KILL_AFTER_MAILED,
                   within=120, every=0.1, what="the burst to be under way")
        suite.kill("notifier-worker", signal.SIGKILL)
        mailed_at_kill = len(confirmations(suite.mail_dir, wanted))
        posted_at_kill = len(numbers)
        time.sleep(0.5)
        suite.spawn("notifier-worker")  # a new `iamctl worker notifier` process
        for future in futures:
            future.result()
    assert posted_at_kill < BURST and mailed_at_kill < BURST, "the kill came after the burst"
    assert len(numbers) == BURST and len(set(numbers.values())) == BURST

    def all_mailed() -> list | None:
        mails = confirmations(suite.mail_dir, wanted)
        return mails if len({m.to for m in mails}) == BURST else None

    try:
        eventually(all_mailed, within=150, every=1.0, what="500 confirmation emails")
    except AssertionError as exc:
        got = confirmations(suite.mail_dir, wanted)
        raise AssertionError(f"{exc}: {len({m.to for m in got})} recipients, {len(got)} emails "
                             f"(at the kill: {mailed_at_kill})\n"
                             f"{suite.log_tails('notifier-worker', 'identity-worker')}") from None
    time.sleep(3)  # a late duplicate (a re-send after the reclaim) would land by now
    mails = confirmations(suite.mail_dir, wanted)
    per_recipient = Counter(m.to for m in mails)
    assert {to for to, n in per_recipient.items() if n > 1} == set()
    ids = Counter(m.message_id for m in mails)
    assert len(ids) == BURST and all(n == 1 for n in ids.values())
    assert "" not in ids
    # Each email carries its own enrollment's link: nothing was crossed over.
    assert all("/enroll/verify?token=" in m.text for m in mails)

    tracking_db = Database(suite.databases["tracking"])
    try:
        wanted_numbers = set(numbers.values())
        found = eventually(lambda: (seen := tracked_numbers(tracking_db, wanted_numbers))
                           == wanted_numbers and seen, within=60, every=0.5,
                           what="every enrollment in tracking")
    finally:
        tracking_db.dispose()
    assert found == wanted_numbers
    assert suite.processes["notifier-worker"].poll() is None, suite.log_tails("notifier-worker")

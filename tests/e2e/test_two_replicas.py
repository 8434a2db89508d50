"""Horizontal scale is real (issue 9): two gunicorn instances of identity and of
permissions, and two workers of identity and of tracking, against one Redis and one
database, share login sessions, rate limits, the JWT deny-list, the permission cache,
the outbox and the consumer group correctly."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
import requests
from sqlalchemy import func, select

from services.common.db import Database
from services.common.streams import events_stream
from services.identity.models import OutboxEvent
from services.tracking.models import StatusChange, Transaction
from tests.e2e.journey import (
    TIMEOUT,
    Member,
    app_client_spec,
    bearer,
    client_credentials_token,
    enroll,
    enroll_and_activate,
    eventually,
    login_form,
    oidc_login,
    operator_client_spec,
    register_client,
)
from tests.e2e.launcher import SERVICES, Suite
from tests.support import delete_namespace

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

EVENTS = 40  # enrollments whose events two relays publish and two tracking workers ingest


@dataclass
class Replicas:
    suite: Suite
    identity_a: str
    identity_b: str
    permissions_a: str
    permissions_b: str
    app: dict
    ops_token: str
    ana: Member


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, _databases, redis_url) -> Iterator[Replicas]:
    root = tmp_path_factory.mktemp("replicas")
    namespace = f"t{uuid.uuid4().hex[:12]}"
    suite = Suite(root, databases={s: _databases.new_url(str(root), s) for s in SERVICES},
                  redis_url=redis_url, namespace=namespace,
                  extra_env={"ENROLLMENT_RATE_LIMIT_IP": "100000 per minute",
                             "ENROLLMENT_RATE_LIMIT_TARGET": "3 per hour",
                             "WORKER_CLAIM_IDLE_MS": "2000"})
    try:
        suite.start()
        identity_b = suite.spawn_web_replica("identity", "identity-b")
        permissions_b = suite.spawn_web_replica("permissions", "permissions-b")
        suite.spawn("identity-worker-b", suite.plan.processes["identity-worker"])
        suite.spawn("tracking-worker-b", suite.plan.processes["tracking-worker"])
        identity_a = suite.url("identity")
        admin = suite.bootstrap()["admin_client"]
        admin_token = client_credentials_token(identity_a, admin["client_id"],
                                               admin["client_secret"])
        app = register_client(identity_a, admin_token, app_client_spec())
        console = register_client(identity_b, admin_token, operator_client_spec())
        ops = client_credentials_token(identity_b, console["client_id"], console["client_secret"],
                                       audience="permissions")
        ana = enroll_and_activate(identity_a, suite.mail_dir, "ana@example.com", "Ana")
        yield Replicas(suite=suite, identity_a=identity_a, identity_b=identity_b,
                       permissions_a=suite.url("permissions"), permissions_b=permissions_b,
                       app=app, ops_token=ops, ana=ana)
    finally:
        suite.stop()
        delete_namespace(redis.Redis.from_url(redis_url), namespace)


def test_a_login_session_made_on_one_identity_instance_is_valid_on_the_other(replicas):
    browser = requests.Session()
    done = login_form(browser, f"{replicas.identity_a}/login", replicas.ana.username)
    assert done.status_code == 303, done.text
    # The session cookie from A opens B's signed-in page (no bounce to the login form) ...
    page = browser.get(f"{replicas.identity_b}/account/consents", allow_redirects=False,
                       timeout=TIMEOUT)
    assert page.status_code == 200, page.headers.get("Location")
    # ... and B's /authorize issues a code for it; the code is redeemed at B, and a login
    # started on B and finished on A works the same way.
    tokens = oidc_login(replicas.identity_b, replicas.app, replicas.ana.username,
                        browser=browser)
    assert tokens["access_token"]
    fresh = oidc_login(replicas.identity_b, replicas.app, replicas.ana.username,
                       login_at=replicas.identity_a)
    assert fresh["access_token"]


def test_a_rate_limit_is_counted_across_both_instances(replicas):
    email = f"limited-{uuid.uuid4().hex[:8]}@example.com"
    answers = [enroll_status(base, email) for base in (replicas.identity_a, replicas.identity_b,
                                                       replicas.identity_a)]
    # 3 per hour per target: one enrollment stored, two duplicates answered alike ...
    assert answers == [201, 201, 201]
    # ... and the fourth, on the instance that has counted only one, is refused.
    refused = requests.post(f"{replicas.identity_b}/v1/enrollments", timeout=TIMEOUT,
                            json=_body(email))
    assert refused.status_code == 429, refused.text
    assert refused.headers.get("Retry-After")


def enroll_status(base: str, email: str) -> int:
    return requests.post(f"{base}/v1/enrollments", json=_body(email), timeout=TIMEOUT).status_code


def _body(email: str) -> dict:
    from tests.e2e.journey import enrollment_body

    return enrollment_body(email, "Limited")


def test_a_token_revoked_at_identity_a_is_refused_by_both_permissions_instances(replicas):
    token = oidc_login(replicas.identity_a, replicas.app, replicas.ana.username)["access_token"]
    home = f"/v1/users/{replicas.ana.user_id}/home"
    for base in (replicas.permissions_a, replicas.permissions_b):
        answer = requests.get(base + home, headers=bearer(token), timeout=TIMEOUT)
        assert answer.status_code == 200, answer.text
    revoked = requests.post(f"{replicas.identity_a}/revoke", timeout=TIMEOUT,
                            data={"token": token, "token_type_hint": "access_token"},
                            auth=(replicas.app["client_id"], replicas.app["client_secret"]))
    assert revoked.status_code == 200, revoked.text
    for base in (replicas.permissions_b, replicas.permissions_a):
        answer = requests.get(base + home, headers=bearer(token), timeout=TIMEOUT)
        assert answer.status_code == 401, answer.text
        assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]


def test_a_grant_revoked_on_one_permissions_instance_is_denied_at_once_by_the_other(replicas):
    ana = replicas.ana
    token = oidc_login(replicas.identity_a, replicas.app, ana.username)["access_token"]
    check = {"subject": ana.user_id, "action": "cards.view"}

    def decide(base: str) -> dict:
        answer = requests.post(f"{base}/v1/check", json=check, headers=bearer(token),
                               timeout=TIMEOUT)
        assert answer.status_code == 200, answer.text
        return answer.json()

    # B answers from its cache (asked twice: the second answer is the cached one).
    assert decide(replicas.permissions_b) == {"allowed": True, "reason": "granted"}
    assert decide(replicas.permissions_b)["allowed"] is True
    grants = requests.get(f"{replicas.permissions_a}/v1/users/{ana.user_id}/entitlements",
                          headers=bearer(replicas.ops_token), timeout=TIMEOUT)
    assert grants.status_code == 200, grants.text
    grant = next(g for g in grants.json()["grants"] if g["entitlement"] == "cards.view")
    revoked = requests.delete(f"{replicas.permissions_a}/admin/v1/grants/{grant['id']}",
                              json={"why": "left the team"}, headers=bearer(replicas.ops_token),
                              timeout=TIMEOUT)
    assert revoked.status_code == 204, revoked.text
    # The very next check on B, with no wait, sees the revocation made through A.
    assert decide(replicas.permissions_b) == {"allowed": False, "reason": "not_granted"}
    assert decide(replicas.permissions_a)["allowed"] is False


class StreamRecorder:
    """Every entry added to ``stream`` while it runs, read with a blocking XREAD.

    Entries that carried sealed secrets are deleted once every group has acknowledged
    them, so reading the stream afterwards proves nothing. A client blocked in XREAD is
    served inside the XADD itself, before any later XDEL can run; the recorder only
    risks a miss in the instant between two reads, which the Redis >= 7 counter
    (``entries-added``) does not share — both are checked where available.
    """

    def __init__(self, url: str, stream: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.stream = stream
        self.ids: Counter[str] = Counter()
        self.last = self.client.xinfo_stream(stream)["last-generated-id"]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)

    def _read(self) -> None:
        while not self.stopping.is_set():
            for _, items in self.client.xread({self.stream: self.last}, block=200, count=1000) or []:
                for entry_id, fields in items:
                    self.last = entry_id
                    self.ids[json.loads(fields[b"envelope"])["id"]] += 1

    def __enter__(self) -> StreamRecorder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.client.close()


def outbox_event_ids(url: str, after_id: int) -> list[str]:
    db = Database(url)
    try:
        with db.read() as session:
            return list(session.scalars(select(OutboxEvent.event_id).where(OutboxEvent.id > after_id)))
    finally:
        db.dispose()


def last_outbox_id(url: str) -> int:
    db = Database(url)
    try:
        with db.read() as session:
            return session.scalar(select(func.max(OutboxEvent.id))) or 0
    finally:
        db.dispose()


def unpublished_up_to(url: str, last_id: int) -> int:
    db = Database(url)
    try:
        with db.read() as session:
            return session.scalar(select(func.count()).select_from(OutboxEvent).where(
                OutboxEvent.id <= last_id, OutboxEvent.published_at.is_(None))) or 0
    finally:
        db.dispose()


def test_two_relays_and_two_tracking_workers_store_each_event_once(replicas):
    suite = replicas.suite
    stream = events_stream("identity", suite.env["REDIS_NAMESPACE"])
    client = redis.Redis.from_url(suite.env["REDIS_URL"])
    outbox_before = last_outbox_id(suite.databases["identity"])
    # The set-up's own events must be on the stream before it is counted: one relayed
    # after the count would be taken for an extra XADD of this test's events.
    eventually(lambda: unpublished_up_to(suite.databases["identity"], outbox_before) == 0,
               within=30, every=0.2, what="the set-up's events published")
    added_before = client.xinfo_stream(stream).get("entries-added")
    emails = [f"scale{i:02d}-{uuid.uuid4().hex[:6]}@example.com" for i in range(EVENTS)]
    with StreamRecorder(suite.env["REDIS_URL"], stream) as recorder:
        numbers = {enroll(replicas.identity_a if i % 2 else replicas.identity_b, email,
                          "Scale")["tracking_number"] for i, email in enumerate(emails)}
        assert len(numbers) == EVENTS

        tracking_db = Database(suite.databases["tracking"])
        try:
            def history_rows() -> dict[str, int] | None:
                with tracking_db.read() as session:
                    rows = dict(session.execute(
                        select(Transaction.tracking_number, func.count(StatusChange.id))
                        .join(StatusChange, StatusChange.transaction_id == Transaction.id)
                        .where(Transaction.tracking_number.in_(numbers))
                        .group_by(Transaction.tracking_number)).all())
                return rows if len(rows) == EVENTS else None

            rows = eventually(history_rows, within=90, every=0.5,
                              what="every enrollment in tracking")
            # An enrollment writes more than the event tracking stores: every row of the
            # outbox must be relayed before the recorder stops, or one relayed after it
            # reads as never published.
            last = last_outbox_id(suite.databases["identity"])
            eventually(lambda: unpublished_up_to(suite.databases["identity"], last) == 0,
                       within=30, every=0.2, what="every event of the test published")
        finally:
            tracking_db.dispose()
    # One submitted event per enrollment, and one history row for it: nothing stored twice.
    assert set(rows.values()) == {1}, rows

    try:
        published = outbox_event_ids(suite.databases["identity"], outbox_before)
        assert len(published) >= EVENTS
        # The two relays published each outbox row once (no race between them) ...
        assert {event_id: recorder.ids[event_id] for event_id in published} == dict.fromkeys(
            published, 1)
        added_after = client.xinfo_stream(stream).get("entries-added")
        if added_before is not None and added_after is not None:  # Redis >= 7 counts XADDs
            assert added_after - added_before == len(published)
        consumers = client.xinfo_consumers(stream, "tracking")
        # Both tracking workers joined the one consumer group and left nothing pending.
        assert len(consumers) >= 2, consumers
        assert all(c["pending"] == 0 for c in consumers), consumers
    finally:
        client.close()

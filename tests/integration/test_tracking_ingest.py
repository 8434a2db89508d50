"""Building transactions from events: each mapped type, duplicates, out-of-order
arrival (with a hypothesis property), and the whole path through Redis Streams."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from services.common import tracking_numbers
from services.common.events import Consumer, Envelope, OutboxRelay
from services.common.streams import events_stream
from services.tracking.handlers import registry
from services.tracking.ingest import RULES
from services.tracking.models import OutboxEvent, ProcessedEvent, StatusChange, Transaction
from services.tracking.overview import Filters, overview_page

TX_COLUMNS = ("id", "type", "status", "owner_user_id", "company_id", "title_en", "created_at",
              "last_event_at")
HISTORY_COLUMNS = ("status", "applied", "event_type", "event_id", "at", "actor")
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(make_app):
    return make_app("tracking").extensions["portico"].db


def event(type_: str, number: str, minute: int, *, source: str | None = None,
          subject: str | None = None, company: str | None = None, **data) -> Envelope:
    return Envelope.new(type_, source or type_.split(".")[0], data, subject=subject,
                        company_id=company, tracking_number=number,
                        occurred_at=T0 + timedelta(minutes=minute))


def ingest(db, *envelopes: Envelope) -> None:
    for envelope in envelopes:
        with db.transaction() as session:
            registry(session, envelope)


def load(db, number: str):
    with db.read() as session:
        tx = session.scalar(select(Transaction).where(Transaction.tracking_number == number))
        if tx is None:
            return None, []
        history = session.scalars(select(StatusChange).where(StatusChange.transaction_id == tx.id)
                                  .order_by(StatusChange.at, StatusChange.id)).all()
        snapshot = [SimpleNamespace(**{c: getattr(h, c) for c in HISTORY_COLUMNS})
                    for h in history]
        return SimpleNamespace(**{c: getattr(tx, c) for c in TX_COLUMNS}), snapshot


def outbox(db) -> list[dict]:
    with db.read() as session:
        return [json.loads(p) for p in session.scalars(
            select(OutboxEvent.payload).order_by(OutboxEvent.id))]


def test_every_mapped_event_type_has_one_handler():
    assert registry.types == sorted(RULES)
    assert not any(t.startswith("tracking.") for t in registry.types)


@pytest.mark.parametrize("type_,data,tx_type,status", [
    ("identity.enrollment.submitted", {"enrollment_id": "e1"}, "enrollment", "submitted"),
    ("identity.enrollment.verified", {}, "enrollment", "in_review"),
    ("identity.access_code.issued", {}, "enrollment", "approved"),
    ("identity.user.activated", {"user_id": "u1", "company_id": "c1"}, "enrollment", "completed"),
    ("identity.enrollment.locked", {}, "enrollment", "failed"),
    ("identity.password_reset.requested", {"user_id": "u1"}, "password_reset", "submitted"),
    ("identity.password.changed", {"user_id": "u1", "via": "reset"}, "password_reset",
     "completed"),
    ("identity.contact.change_requested", {"user_id": "u1"}, "contact_change", "submitted"),
    ("identity.contact.changed", {"user_id": "u1"}, "contact_change", "completed"),
    ("identity.user.reactivated", {"user_id": "u1", "actor_id": "hd1"}, "reactivation",
     "completed"),
    ("permissions.request.created", {"requester_id": "u1", "entitlements": ["cards.cancel"]},
     "entitlement_request", "submitted"),
    ("permissions.request.cosigned", {"cosigned_by": "hd1"}, "entitlement_request", "in_review"),
    ("permissions.request.approved", {"decided_by": "p1", "comment": "ok"},
     "entitlement_request", "approved"),
    ("permissions.request.rejected", {"decided_by": "p1"}, "entitlement_request", "rejected"),
    ("permissions.request.expired", {}, "entitlement_request", "expired"),
    ("permissions.request.cancelled", {}, "entitlement_request", "cancelled"),
])
def test_each_event_type_creates_its_transaction(db, type_, data, tx_type, status):
    number = tracking_numbers.generate()
    ingest(db, event(type_, number, 0, subject="u1", company="c1", **data))
    tx, history = load(db, number)
    assert (tx.type, tx.status) == (tx_type, status)
    assert [(h.status, h.applied, h.event_type) for h in history] == [(status, True, type_)]
    changed = outbox(db)
    assert [e["type"] for e in changed] == ["tracking.status.changed"]
    assert changed[0]["tracking_number"] == number
    assert changed[0]["data"]["new_status"] == status
    assert changed[0]["data"]["old_status"] is None


def test_enrollment_lifecycle_fills_in_the_owner_but_never_the_company(db):
    """An enrollment naming a company's tax id is not that company's business (whoever
    typed it): it is never filed under the company, so no company overview lists it."""
    number = tracking_numbers.generate()
    ingest(db,
           event("identity.enrollment.submitted", number, 0, email="a@example.com",
                 company="c-3"),
           event("identity.enrollment.verified", number, 1, company="c-3"),
           event("identity.access_code.issued", number, 2, company="c-3"),
           event("identity.user.activated", number, 3, subject="u-9", company="c-3",
                 user_id="u-9", company_id="c-3"))
    tx, history = load(db, number)
    assert (tx.status, tx.owner_user_id, tx.company_id) == ("completed", "u-9", None)
    assert [h.status for h in history] == ["submitted", "in_review", "approved", "completed"]
    assert all(h.applied for h in history)
    changes = [(e["data"]["old_status"], e["data"]["new_status"]) for e in outbox(db)]
    assert changes == [(None, "submitted"), ("submitted", "in_review"),
                       ("in_review", "approved"), ("approved", "completed")]


def test_a_membership_request_is_the_newcomers_transaction_and_no_companys(db):
    number = tracking_numbers.generate()
    ingest(db,
           event("permissions.membership.requested", number, 0, subject="new-1",
                 company="co-a", user_id="new-1", company_id="co-a", principal_admin_id="pa"),
           event("permissions.membership.approved", number, 1, subject="new-1",
                 company="co-a", user_id="new-1", decided_by="pa", comment="welcome"))
    tx, history = load(db, number)
    assert (tx.type, tx.status, tx.owner_user_id, tx.company_id, tx.title_en) == (
        "membership", "approved", "new-1", None, "Company membership request")
    assert [(h.status, h.actor) for h in history] == [("submitted", "service:permissions"),
                                                      ("approved", "user:pa")]


def test_no_company_overview_lists_enrollments_or_membership_requests(db):
    """A stranger's enrollment naming company A's tax id, and their membership request,
    are not in A's overview; A's own entitlement requests still are."""
    enrollment, membership, request = (tracking_numbers.generate() for _ in range(3))
    ingest(db,
           event("identity.enrollment.submitted", enrollment, 0, company="co-a",
                 email="stranger@example.com"),
           event("identity.user.activated", enrollment, 1, subject="stranger", company="co-a",
                 user_id="stranger", company_id="co-a"),
           event("permissions.membership.requested", membership, 2, subject="stranger",
                 company="co-a", user_id="stranger"),
           event("permissions.request.created", request, 3, subject="ua", company="co-a",
                 requester_id="ua", entitlements=["cards.view"]))
    with db.read() as session:
        listed = overview_page(session, Filters(company_id="co-a"), 50).items
        own = overview_page(session, Filters(owner_user_id="stranger"), 50).items
    assert [row.tracking_number for row in listed] == [request]
    assert {row.tracking_number for row in own} == {enrollment, membership}


def test_password_changed_from_the_profile_is_not_a_reset(db):
    number = tracking_numbers.generate()
    ingest(db, event("identity.password.changed", number, 0, subject="u1", via="profile"))
    assert load(db, number) == (None, [])


def test_event_without_a_valid_tracking_number_is_ignored(db):
    bad = event("identity.enrollment.submitted", "PTC-0000-0000-1", 0)
    none = Envelope.new("identity.enrollment.submitted", "identity", {})
    ingest(db, bad, none)
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(Transaction)) == 0


def test_duplicate_event_changes_nothing(db):
    number = tracking_numbers.generate()
    submitted = event("identity.password_reset.requested", number, 0, subject="u1")
    ingest(db, submitted, submitted, submitted)
    _, history = load(db, number)
    assert len(history) == 1
    assert len(outbox(db)) == 1


def test_older_event_is_recorded_but_does_not_move_the_status_back(db):
    number = tracking_numbers.generate()
    ingest(db, event("permissions.request.created", number, 0, subject="t1", requester_id="r1",
                     entitlements=["reports.view"]),
           event("permissions.request.approved", number, 5, subject="t1", decided_by="p1"),
           event("permissions.request.cosigned", number, 2, subject="t1", cosigned_by="hd"))
    tx, history = load(db, number)
    assert tx.status == "approved"
    assert tx.owner_user_id == "r1"
    assert tx.title_en == "Entitlement request: reports.view"
    assert [(h.status, h.applied) for h in history] == [
        ("submitted", True), ("in_review", False), ("approved", True)]
    assert history[1].actor == "user:hd"


def test_later_event_first_creates_the_transaction_and_earlier_ones_fill_the_history(db):
    number = tracking_numbers.generate()
    ingest(db, event("identity.user.activated", number, 9, subject="u1", company="c1"),
           event("identity.enrollment.submitted", number, 0))
    tx, history = load(db, number)
    assert tx.status == "completed"
    assert tx.created_at.replace(tzinfo=UTC) == T0
    assert [(h.status, h.applied) for h in history] == [("submitted", False), ("completed", True)]
    assert len(outbox(db)) == 1


def test_illegal_newer_event_is_kept_unapplied(db):
    number = tracking_numbers.generate()
    ingest(db, event("permissions.request.created", number, 0, requester_id="r1"),
           event("permissions.request.rejected", number, 1),
           event("permissions.request.approved", number, 2))
    tx, history = load(db, number)
    assert tx.status == "rejected"
    assert [(h.status, h.applied) for h in history][-1] == ("approved", False)


# A valid sequence for each type: each later status is reachable from the earlier ones.
SEQUENCES = [
    [("identity.enrollment.submitted", {}), ("identity.enrollment.verified", {}),
     ("identity.access_code.issued", {}),
     ("identity.user.activated", {"user_id": "u1", "company_id": "c1"})],
    [("identity.enrollment.submitted", {}), ("identity.enrollment.verified", {}),
     ("identity.enrollment.locked", {})],
    [("permissions.request.created", {"requester_id": "r1", "entitlements": ["cards.cancel"]}),
     ("permissions.request.cosigned", {"cosigned_by": "hd"}),
     ("permissions.request.approved", {"requester_id": "r1", "entitlements": ["cards.cancel"]})],
    [("permissions.request.created", {"requester_id": "r1", "entitlements": ["x.y"]}),
     ("permissions.request.expired", {"requester_id": "r1", "entitlements": ["x.y"]})],
    [("identity.password_reset.requested", {}),
     ("identity.password.changed", {"via": "reset"})],
]


@st.composite
def arrivals(draw):
    sequence = draw(st.sampled_from(SEQUENCES))
    order = draw(st.permutations(range(len(sequence))))
    repeats = draw(st.lists(st.sampled_from(range(len(sequence))), max_size=4))
    positions = [draw(st.integers(0, len(order) + i)) for i in range(len(repeats))]
    arrival = list(order)
    for index, position in zip(repeats, positions, strict=True):
        arrival.insert(position, index)
    return sequence, arrival


def _end_state(db, number):
    tx, history = load(db, number)
    return ((tx.type, tx.status, tx.owner_user_id, tx.company_id, tx.title_en,
             tx.created_at, tx.last_event_at),
            sorted((h.event_id, h.status, h.at) for h in history))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=arrivals())
def test_any_order_with_duplicates_ends_in_the_same_state(db, case):
    sequence, arrival = case
    in_order, shuffled, batched = (tracking_numbers.generate() for _ in range(3))
    envelopes = {}
    for number in (in_order, shuffled, batched):
        envelopes[number] = [event(t, number, minute, subject=data.get("user_id"), **data)
                             for minute, (t, data) in enumerate(sequence)]
    ingest(db, *envelopes[in_order])
    ingest(db, *(envelopes[shuffled][i] for i in arrival))
    # The consumer's way: the whole arrival (duplicates included) in one batch call.
    with db.transaction() as session:
        registry.handle_all(session, [envelopes[batched][i] for i in arrival])
    expected_state, expected_history = _end_state(db, in_order)
    ids_in_order = {e.id: i for i, e in enumerate(envelopes[in_order])}
    for number in (shuffled, batched):
        state, history = _end_state(db, number)
        assert state == expected_state
        ids = {e.id: i for i, e in enumerate(envelopes[number])}
        assert sorted((ids[e], s, a) for e, s, a in history) == \
            sorted((ids_in_order[e], s, a) for e, s, a in expected_history)
        assert len(history) == len(sequence)
    assert expected_state[1] == RULES[sequence[-1][0]].status


def test_events_flow_from_a_stream_through_the_consumer_and_out_again(
        make_app, redis_client, namespace):
    app = make_app("tracking")
    db = app.extensions["portico"].db
    identity_stream = events_stream("identity", namespace)
    consumer = Consumer(db, redis_client, "tracking", [identity_stream], registry, ProcessedEvent,
                        namespace=namespace, block_ms=10)
    consumer.ensure_groups()
    number = tracking_numbers.generate()
    sent = [event("identity.enrollment.submitted", number, 0),
            event("identity.enrollment.verified", number, 1),
            event("identity.enrollment.verified", number, 1)]
    sent[2] = sent[1]  # the same event delivered twice
    for envelope in sent:
        redis_client.xadd(identity_stream, {"envelope": envelope.to_json()})
    settled = 0
    while settled < 3:
        done = consumer.process_once()
        assert done, "the consumer stopped before settling every entry"
        settled += done
    tx, history = load(db, number)
    assert tx.status == "in_review"
    assert len(history) == 2

    tracking_stream = events_stream("tracking", namespace)
    relay = OutboxRelay(db, OutboxEvent, redis_client, tracking_stream)
    assert relay.relay_once() == 2
    published = [Envelope.from_json(f[b"envelope"])
                 for _, f in redis_client.xrange(tracking_stream)]
    assert [e.data["new_status"] for e in published] == ["submitted", "in_review"]

    # Tracking reads its own stream too: its own events must not loop back in.
    own = Consumer(db, redis_client, "tracking", [tracking_stream], registry, ProcessedEvent,
                   namespace=namespace, block_ms=10)
    assert own.process_once() == 2
    assert relay.relay_once() == 0


def test_an_older_event_never_applies_even_when_the_move_would_be_allowed(db):
    number = tracking_numbers.generate()
    ingest(db, event("permissions.request.created", number, 0, requester_id="r1"),
           event("permissions.request.cosigned", number, 5, cosigned_by="hd"),
           event("permissions.request.approved", number, 3, decided_by="p1"))
    tx, history = load(db, number)
    assert tx.status == "in_review"
    assert [(h.status, h.applied) for h in history] == [
        ("submitted", True), ("approved", False), ("in_review", True)]


def test_one_batch_of_many_numbers_matches_one_by_one(db):
    numbers = [tracking_numbers.generate() for _ in range(2)]
    batch = []
    for n in numbers:
        batch += [event("identity.enrollment.submitted", n, 0),
                  event("identity.enrollment.verified", n, 1),
                  event("identity.access_code.issued", n, 2)]
    one_by_one = [tracking_numbers.generate() for _ in range(2)]
    for n in one_by_one:
        ingest(db, event("identity.enrollment.submitted", n, 0),
               event("identity.enrollment.verified", n, 1),
               event("identity.access_code.issued", n, 2))
    with db.transaction() as session:
        registry.handle_all(session, batch[1:] + batch[:1])  # the first one arrives last
    for n, m in zip(numbers, one_by_one, strict=True):
        assert _end_state(db, n)[0] == _end_state(db, m)[0]
        assert [h.status for h in load(db, n)[1]] == ["submitted", "in_review", "approved"]
    changes = [(e["tracking_number"], e["data"]["old_status"], e["data"]["new_status"])
               for e in outbox(db) if e["tracking_number"] in numbers]
    assert changes == [(numbers[0], None, "in_review"), (numbers[0], "in_review", "approved"),
                       (numbers[1], None, "submitted"), (numbers[1], "submitted", "in_review"),
                       (numbers[1], "in_review", "approved")]


def test_two_consumers_racing_to_create_one_transaction_lose_no_event(db):
    """The first creation holds its transaction open while a second event for the same
    number arrives on another connection: the second waits, then lands in the history."""
    import threading
    import time

    number = tracking_numbers.generate()
    submitted = event("identity.enrollment.submitted", number, 0)
    verified = event("identity.enrollment.verified", number, 1)
    created = threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with db.transaction() as session:
                registry(session, submitted)
                session.flush()
                created.set()
                time.sleep(0.3)  # the row is inserted, not committed yet
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
            created.set()

    thread = threading.Thread(target=first)
    thread.start()
    assert created.wait(5)
    with db.transaction() as session:  # waits for the first one's commit
        registry(session, verified)
    thread.join(5)

    assert errors == []
    tx, history = load(db, number)
    assert tx.status == "in_review"
    assert [(h.event_id, h.applied) for h in history] == [(submitted.id, True),
                                                          (verified.id, True)]
    assert [e["data"]["new_status"] for e in outbox(db)] == ["submitted", "in_review"]

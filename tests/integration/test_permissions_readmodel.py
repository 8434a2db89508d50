"""The read model built from identity's events, through the handler registry."""

from __future__ import annotations

import threading

from services.common.events import Consumer, Envelope, OutboxRelay, record_event
from services.common.streams import events_stream
from services.permissions.handlers import registry
from services.permissions.models import (
    Company,
    CompanyAccount,
    Grant,
    OutboxEvent,
    ProcessedEvent,
    User,
)


def activated(user_id="u-1", accounts=(("11111", "fp-1"),), **extra):
    return Envelope.new("identity.user.activated", "identity", {
        "user_id": user_id, "enrollment_id": "e-1", "email": "ana@example.com",
        "given_name": "Ana", "family_name": "Ruiz", "phone": "+15550100", "job_title": "CFO",
        "preferred_language": "es", "company_id": "co-1", "company_name": "Acme",
        "accounts": [{"last5": a, "fingerprint": f} for a, f in accounts],
        "notifications": {"status_changes": True}, **extra}, subject=user_id)


def test_registry_handles_the_identity_events_it_needs():
    assert set(registry.types) == {"identity.user.activated", "identity.user.deactivated",
                                   "identity.user.reactivated", "identity.user.disabled",
                                   "identity.contact.changed"}


def test_activation_builds_user_company_accounts_and_the_account_manager_role(world):
    """The company's first member founds it (test_permissions_membership.py: later ones)."""
    envelope = activated()
    world.deliver(envelope.type, envelope.data, envelope)
    world.deliver(envelope.type, envelope.data, envelope)  # redelivered
    with world.db.read() as session:
        user = session.get(User, "u-1")
        assert (user.company_id, user.email, user.given_name, user.preferred_language,
                user.status) == ("co-1", "ana@example.com", "Ana", "es", "active")
        company = session.get(Company, "co-1")
        assert company.name == "Acme" and company.principal_user_id is None
        accounts = {(a.last5, a.fingerprint) for a in session.query(CompanyAccount)}
        assert accounts == {("11111", "fp-1")}
        grants = sorted(g.entitlement_key for g in session.query(Grant).filter_by(user_id="u-1"))
    assert grants == ["cards.view", "contacts.update", "entitlements.request",
                      "transactions.track"]
    assert world.check("u-1", "transactions.track")["allowed"] is True


def test_status_and_contact_events_update_the_user(world):
    world.activate("u-1", "co-1")
    world.deliver("identity.user.deactivated", {"user_id": "u-1", "reason": "inactivity"})
    with world.db.read() as session:
        assert session.get(User, "u-1").status == "inactive"
    world.deliver("identity.user.reactivated", {"user_id": "u-1", "actor_id": "hd"})
    world.deliver("identity.contact.changed", {
        "user_id": "u-1", "email": "new@example.com", "old_email": "u-1@example.com",
        "phone": "+1555", "job_title": "CEO", "given_name": "Ann", "family_name": "Lee",
        "preferred_language": "es", "notifications": {}})
    world.deliver("identity.user.deactivated", {"user_id": "never-seen", "reason": "helpdesk"})
    with world.db.read() as session:
        user = session.get(User, "u-1")
        assert (user.status, user.email, user.given_name, user.preferred_language) == (
            "active", "new@example.com", "Ann", "es")
        assert session.get(User, "never-seen") is None


def test_events_from_the_identity_stream_are_consumed_once(world, redis_client, namespace):
    """Through the real relay and consumer: a duplicate entry changes nothing."""
    envelope = activated()
    with world.db.transaction() as session:
        record_event(session, OutboxEvent, envelope)
    stream = events_stream("identity", namespace)
    relay = OutboxRelay(world.db, OutboxEvent, redis_client, stream)
    assert relay.relay_once() == 1
    redis_client.xadd(stream, {"envelope": envelope.to_json()})  # a redelivery
    consumer = Consumer(world.db, redis_client, "permissions", [stream], registry,
                        ProcessedEvent, namespace=namespace, block_ms=10)
    stop = threading.Event()
    while consumer.process_once(stop):
        pass
    with world.db.read() as session:
        assert session.query(User).count() == 1
        assert session.query(Grant).filter_by(user_id="u-1").count() == 4

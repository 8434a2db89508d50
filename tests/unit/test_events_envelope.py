"""The event envelope, sealing and handler dispatch (no Redis or database needed)."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet

from services.common.events import Envelope, HandlerRegistry, Sealer


def test_envelope_round_trips_through_json():
    envelope = Envelope.new("identity.user.activated", "identity", {"user_id": "u-1"},
                            subject="u-1", company_id="c-9", tracking_number="PTC-7K3M-9QX2-H",
                            sealed="opaque")

    parsed = Envelope.from_json(envelope.to_json())

    assert parsed == envelope
    assert parsed.correlation_id == envelope.id
    assert json.loads(envelope.to_json())["version"] == 1
    assert parsed.occurred.tzinfo is not None


def test_envelope_ignores_unknown_fields_from_a_newer_producer():
    raw = json.loads(Envelope.new("a.b.c", "identity").to_json())
    raw["added_later"] = True

    assert Envelope.from_json(json.dumps(raw)).type == "a.b.c"


@pytest.mark.parametrize("raw, reason", [
    ("not json", "not JSON"),
    ("[1, 2]", "not an object"),
    ('{"id": "x", "type": "a.b.c", "source": "s"}', "lacks occurred_at"),
    ('{"id": "x", "type": "a", "source": "s", "occurred_at": "t", "data": [1]}', "data"),
])
def test_a_malformed_envelope_is_refused_with_the_reason(raw, reason):
    with pytest.raises(ValueError, match=reason):
        Envelope.from_json(raw)


def test_sealer_round_trip_and_ciphertext_hides_the_secret():
    sealer = Sealer(Fernet.generate_key())

    token = sealer.seal({"access_code": "ZX81-PLUS"})

    assert "ZX81-PLUS" not in token
    assert sealer.unseal(token) == {"access_code": "ZX81-PLUS"}


def test_sealer_refuses_a_token_sealed_with_another_key():
    token = Sealer(Fernet.generate_key()).seal({"access_code": "ZX81-PLUS"})

    with pytest.raises(ValueError, match="cannot be opened"):
        Sealer(Fernet.generate_key()).unseal(token)


def test_registry_dispatches_by_type_in_registration_order_and_ignores_unknown_types():
    registry = HandlerRegistry()
    calls: list[tuple[str, str]] = []

    @registry.on("identity.user.activated")
    def first(session, envelope):
        calls.append(("first", envelope.id))

    @registry.on("identity.user.activated")
    def second(session, envelope):
        calls.append(("second", envelope.id))

    @registry.on("permissions.request.approved")
    def other(session, envelope):
        calls.append(("other", envelope.id))

    activated = Envelope.new("identity.user.activated", "identity")
    registry(None, activated)
    registry(None, Envelope.new("identity.nobody.listens", "identity"))

    assert calls == [("first", activated.id), ("second", activated.id)]
    assert registry.types == ["identity.user.activated", "permissions.request.approved"]
    assert registry.handles("permissions.request.approved")
    assert not registry.handles("identity.nobody.listens")
    assert first.__name__ == "first"  # the decorator hands the function back

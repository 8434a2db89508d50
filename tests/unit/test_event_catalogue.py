"""docs/events.md is the wire contract: every type a service publishes is in it, and
every type in it is consumed by some service or declared unconsumed (STYLE.md habit 4)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from services.common.sealed_retention import readers_by_stream
from services.common.streams import SERVICES, SUBSCRIPTIONS, UNCONSUMED

ROOT = Path(__file__).resolve().parents[2]
TYPE = r"(?:identity|permissions|tracking|notifier)\.[a-z_]+\.[a-z_]+"


def catalogue() -> set[str]:
    return set(re.findall(rf"`({TYPE})`", (ROOT / "docs" / "events.md").read_text()))


def consumed() -> dict[str, set[str]]:
    found = {}
    for service in SERVICES:
        try:
            handlers = importlib.import_module(f"services.{service}.handlers")
        except ModuleNotFoundError:
            continue
        found[service] = set(handlers.registry.types)
    return found


def published_literals() -> set[str]:
    """Event type strings written in the services' code (an f-string's prefix is not one)."""
    literals = set()
    for path in (ROOT / "services").rglob("*.py"):
        literals |= set(re.findall(rf"[\"']({TYPE})[\"']", path.read_text()))
    return literals


def test_every_consumed_type_is_in_the_catalogue():
    for service, types in consumed().items():
        assert types <= catalogue(), f"{service} consumes types missing from docs/events.md"


def test_every_catalogued_type_has_a_consumer_or_is_declared_unconsumed():
    all_consumed = set().union(*consumed().values())
    orphans = catalogue() - all_consumed - UNCONSUMED
    assert not orphans, f"published but consumed by nobody and not declared: {sorted(orphans)}"
    assert not (UNCONSUMED & all_consumed), "declared unconsumed but has a consumer"


def test_every_type_named_in_code_is_in_the_catalogue():
    assert published_literals() <= catalogue()



def test_every_subscribed_group_has_a_consumer():
    """A group in SUBSCRIPTIONS is one that sealed-entry retention waits for: a group
    without handlers would never acknowledge, so its streams' sealed entries would stay."""
    assert set(SUBSCRIPTIONS) == set(consumed())
    readers = readers_by_stream(SUBSCRIPTIONS, "portico")
    assert readers["portico.events.permissions"] == {"tracking", "notifier"}

"""Pure rules: the access-request state machine and the check decision."""

from __future__ import annotations

import gc
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given, settings
from marshmallow import ValidationError

from services.permissions.api.check_parsing import CHECK, fast_check
from services.permissions.cache import untracked
from services.permissions.checks import decide
from services.permissions.domain import (
    TRANSITIONS,
    IllegalTransition,
    RequestState,
    transition,
)
from tests.support import CHECK_BODIES

NOW = datetime(2030, 1, 1, tzinfo=UTC)
SNAPSHOT = {"s": "active", "c": "co-1",
            "a": {"fp-1": "11111", "fp-2": "22222", "fp-3": "22222"},
            "g": {"cards.view": [[None, None]],
                  "cards.cancel": [[["fp-1"], None]],
                  "reports.view": [[None, (NOW - timedelta(seconds=1)).timestamp()]],
                  "reports.export": [[["fp-2", "fp-3"], (NOW + timedelta(days=1)).timestamp()]]}}


@pytest.mark.parametrize("state", [RequestState.APPROVED, RequestState.REJECTED,
                                   RequestState.EXPIRED, RequestState.CANCELLED])
def test_decided_requests_are_terminal(state):
    assert TRANSITIONS[state] == frozenset()
    for target in RequestState:
        with pytest.raises(IllegalTransition):
            transition(state.value, target)


def test_open_requests_may_be_decided_and_only_pending_may_be_cosigned():
    assert transition("pending", RequestState.APPROVED) is RequestState.APPROVED
    assert transition("cosigned", RequestState.EXPIRED) is RequestState.EXPIRED
    with pytest.raises(IllegalTransition):
        transition("cosigned", RequestState.COSIGNED)


@pytest.mark.parametrize(("action", "resource", "expected"), [
    ("cards.view", None, (True, "granted")),
    ("cards.view", {"account_last5": "22222"}, (True, "granted")),
    ("cards.cancel", {"account_fingerprint": "fp-1"}, (True, "granted")),
    ("cards.cancel", {"account_last5": "11111", "company_id": "co-1"}, (True, "granted")),
    ("cards.cancel", {"account_fingerprint": "fp-2"}, (False, "account_not_granted")),
    ("cards.cancel", {"account_fingerprint": "fp-9"}, (False, "unknown_account")),
    ("cards.cancel", {"account_fingerprint": "fp-1", "account_last5": "22222"},
     (False, "unknown_account")),
    ("cards.cancel", {"company_id": "co-2"}, (False, "other_company")),
    ("reports.view", None, (False, "not_granted")),  # expired grant
    # last five shared by two accounts: both must be covered
    ("reports.export", {"account_last5": "22222"}, (True, "granted")),
    ("users.manage", None, (False, "not_granted")),
])
@pytest.mark.parametrize("as_cached", [False, True], ids=["as-loaded", "as-cached"])
def test_decisions(action, resource, expected, as_cached):
    snapshot = untracked(SNAPSHOT) if as_cached else SNAPSHOT
    decision = decide(snapshot, action, resource, NOW)
    assert (decision.allowed, decision.reason) == expected


def test_a_cached_snapshot_leaves_the_garbage_collector_nothing_to_walk_below_its_top():
    cached = untracked(SNAPSHOT)
    for _ in range(4):  # CPython untracks one level of nesting per collection
        gc.collect()
    inner = [cached["a"], cached["g"], *cached["g"].values(),
             *(entry for entries in cached["g"].values() for entry in entries)]
    assert not any(gc.is_tracked(part) for part in inner)
    # The loaded form is lists, which the collector always tracks.
    assert gc.is_tracked(SNAPSHOT["g"]["cards.cancel"][0])


def test_ambiguous_last5_is_denied_unless_every_match_is_granted():
    snapshot = {**SNAPSHOT, "g": {"cards.cancel": [[["fp-2"], None]]}}
    assert decide(snapshot, "cards.cancel", {"account_last5": "22222"}, NOW).allowed is False
    assert decide(snapshot, "cards.cancel", {"account_fingerprint": "fp-2"}, NOW).allowed


def test_unknown_and_inactive_subjects_are_denied():
    assert decide({"s": "unknown"}, "cards.view", None, NOW).reason == "unknown_subject"
    assert decide({**SNAPSHOT, "s": "inactive"}, "cards.view", None, NOW).reason == \
        "subject_inactive"


# -- the hot path's body reader agrees with the marshmallow schema -------------------------

def _scoped(**resource):
    return {"subject": "u-1", "action": "cards.view", "resource": resource}


@settings(max_examples=1000, deadline=None)
@given(CHECK_BODIES)
@example(_scoped(account_last5="1234"))
@example(_scoped(account_last5="12345\n"))
@example(_scoped(account_last5="١٢٣٤٥"))
@example(_scoped(account_fingerprint="f" * 129))
@example(_scoped(company_id=""))
@example(_scoped(other="x"))
@example({"subject": "u-1", "action": "cards.view", "extra": None})
@example({"subject": "u" * 65, "action": "cards.view"})
@example({"subject": "u-1", "action": "a" * 81})
def test_the_fast_check_reader_answers_as_the_schema_or_defers_to_it(body):
    fast = fast_check(body)
    try:
        loaded = CHECK.load(body)
    except ValidationError:
        assert fast is None, body  # never accepts what the schema refuses
        return
    if fast is not None:
        assert fast == loaded


def test_the_fast_check_reader_takes_the_common_shapes():
    plain = {"subject": "u-1", "action": "cards.view"}
    assert fast_check(plain) == {**plain, "resource": None}
    scoped = {**plain, "resource": {"account_last5": "12345", "company_id": "co-1"}}
    assert fast_check(scoped) == CHECK.load(scoped)

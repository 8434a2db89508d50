"""The MFA policy rule (services/identity/factors/policy.py): what a company's policy asks
of one user, from their factors, their sign-in's amr, the grace period and a snooze."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.identity.factors.policy import (
    OPTIONAL,
    CompanyPolicy,
    Factor,
    MfaPolicy,
    Standing,
    Subject,
    decide,
)

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(days=365)
PWD = frozenset({"pwd"})
TOTP_SIGN_IN = frozenset({"pwd", "otp", "mfa"})
PASSKEY_SIGN_IN = frozenset({"hwk", "user"})
NONE: frozenset[Factor] = frozenset()
APP = frozenset({Factor.TOTP})
PASSKEY = frozenset({Factor.PASSKEY})


def user(factors=NONE, amr=PWD, created_at=LONG_AGO, snoozed_until=None) -> Subject:
    return Subject(created_at=created_at, factors=factors, amr=amr, snoozed_until=snoozed_until)


def policy(kind: MfaPolicy, set_days_ago: float = 30, grace_days: int = 0) -> CompanyPolicy:
    return CompanyPolicy(kind, NOW - timedelta(days=set_days_ago), grace_days)


def test_optional_prompts_a_user_without_a_factor_until_snoozed():
    assert decide(OPTIONAL, user(), NOW).standing is Standing.PROMPT
    assert decide(OPTIONAL, user(), NOW).skippable
    snoozed = user(snoozed_until=NOW + timedelta(days=1))
    assert decide(OPTIONAL, snoozed, NOW).standing is Standing.NOTHING
    expired = user(snoozed_until=NOW - timedelta(seconds=1))
    assert decide(OPTIONAL, expired, NOW).standing is Standing.PROMPT


@pytest.mark.parametrize("factors", [APP, PASSKEY, APP | PASSKEY])
def test_optional_asks_nothing_of_a_user_with_any_factor(factors):
    assert decide(OPTIONAL, user(factors), NOW).standing is Standing.NOTHING


def test_required_after_the_grace_period_makes_enrolment_compulsory_snooze_or_not():
    decision = decide(policy(MfaPolicy.REQUIRED, grace_days=7),
                      user(snoozed_until=NOW + timedelta(days=5)), NOW)
    assert decision.standing is Standing.ENROL and decision.blocking
    assert decision.accepted == {Factor.TOTP, Factor.PASSKEY}


def test_during_the_grace_period_an_existing_user_may_skip_and_is_told_until_when():
    company = policy(MfaPolicy.REQUIRED, set_days_ago=2, grace_days=14)
    decision = decide(company, user(), NOW)
    assert decision.standing is Standing.PROMPT and not decision.blocking
    assert decision.binds_at == NOW + timedelta(days=12)
    snoozed = user(snoozed_until=NOW + timedelta(days=7))
    assert decide(company, snoozed, NOW).standing is Standing.NOTHING
    # The grace period's end binds even a user who snoozed past it.
    later = NOW + timedelta(days=12)
    assert decide(company, user(snoozed_until=later + timedelta(days=3)), later).blocking


def test_a_user_created_after_the_policy_was_set_is_bound_at_once():
    company = policy(MfaPolicy.REQUIRED, set_days_ago=2, grace_days=14)
    newcomer = user(created_at=NOW - timedelta(hours=1))
    decision = decide(company, newcomer, NOW)
    assert decision.standing is Standing.ENROL
    assert decision.binds_at == company.set_at


@pytest.mark.parametrize(("factors", "amr"), [(APP, TOTP_SIGN_IN), (PASSKEY, PASSKEY_SIGN_IN),
                                              (APP | PASSKEY, TOTP_SIGN_IN)])
def test_required_is_met_by_a_sign_in_with_either_factor(factors, amr):
    assert decide(policy(MfaPolicy.REQUIRED), user(factors, amr), NOW).standing is Standing.NOTHING


def test_required_with_a_factor_not_used_at_sign_in_must_prove_it():
    decision = decide(policy(MfaPolicy.REQUIRED), user(APP, PWD), NOW)
    assert decision.standing is Standing.PROVE and decision.accepted == APP
    in_grace = policy(MfaPolicy.REQUIRED, set_days_ago=1, grace_days=5)
    assert decide(in_grace, user(APP, PWD), NOW).standing is Standing.NOTHING


def test_phishing_resistant_accepts_only_passkeys():
    company = policy(MfaPolicy.PHISHING_RESISTANT)
    app_only = decide(company, user(APP, TOTP_SIGN_IN), NOW)
    assert app_only.standing is Standing.ENROL and app_only.accepted == PASSKEY
    proved_with_app = decide(company, user(APP | PASSKEY, TOTP_SIGN_IN), NOW)
    assert proved_with_app.standing is Standing.PROVE and proved_with_app.accepted == PASSKEY
    assert decide(company, user(PASSKEY, PASSKEY_SIGN_IN), NOW).standing is Standing.NOTHING


def test_phishing_resistant_in_grace_prompts_an_app_user_to_add_a_passkey():
    company = policy(MfaPolicy.PHISHING_RESISTANT, set_days_ago=1, grace_days=30)
    decision = decide(company, user(APP, TOTP_SIGN_IN), NOW)
    assert decision.standing is Standing.PROMPT and decision.accepted == PASSKEY


def test_changing_only_the_grace_keeps_newcomers_bound():
    company = CompanyPolicy(MfaPolicy.REQUIRED, NOW - timedelta(days=10), 90)
    assert company.binds_from(LONG_AGO) == NOW + timedelta(days=80)
    assert company.binds_from(NOW - timedelta(days=1)) == company.set_at

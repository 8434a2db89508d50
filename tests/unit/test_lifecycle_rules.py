"""Lifecycle configuration and input rules (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from marshmallow import ValidationError

from services.common.config import load
from services.identity.lifecycle.config import config_from
from services.identity.lifecycle.schemas import (
    PasswordChangeSchema,
    ProfileUpdateSchema,
    WhySchema,
    e164,
)
from services.identity.settings import IdentitySettings


def _settings(**environ: str) -> IdentitySettings:
    return load(IdentitySettings, {"OIDC_ISSUER": "http://idp.example", **environ})


def test_lifecycle_rules_read_identity_settings_and_their_variables():
    defaults = config_from(_settings())
    assert (defaults.inactivity_days, defaults.inactivity_warning_days) == (120, 14)
    assert (defaults.lockout_threshold, defaults.lockout_minutes) == (5, 15)
    configured = config_from(_settings(LOCKOUT_THRESHOLD="7", INACTIVITY_DAYS="90",
                                       PUBLIC_BASE_URL="https://portal.example/"))
    assert (configured.lockout_threshold, configured.inactivity_days) == (7, 90)
    assert configured.public_base_url == "https://portal.example"


def test_clock_offset_moves_now():
    fixed = datetime(2030, 1, 1, tzinfo=UTC)
    cfg = config_from(_settings(CLOCK_OFFSET_DAYS="121"), clock=lambda: fixed)
    assert cfg.now() == fixed + timedelta(days=121)
    assert cfg.public_base_url == "http://idp.example"


def test_phone_numbers_become_e164():
    assert e164("+1 (202) 555-0143") == "+12025550143"
    assert e164("+34 912 345 678") == "+34912345678"
    with pytest.raises(ValidationError):
        e164("555")


def test_why_is_required_and_not_blank():
    with pytest.raises(ValidationError) as raised:
        WhySchema().load({"why": "   "})
    assert "why" in raised.value.messages
    assert WhySchema().load({"why": "caller verified"})["why"] == "caller verified"


def test_password_confirmation_must_match():
    with pytest.raises(ValidationError) as raised:
        PasswordChangeSchema().load({"current_password": "a", "password": "b",
                                     "password_confirm": "c"})
    assert "password_confirm" in raised.value.messages


def test_profile_update_refuses_unknown_fields_and_languages():
    with pytest.raises(ValidationError) as raised:
        ProfileUpdateSchema().load({"preferred_language": "fr", "status": "active"})
    assert {"preferred_language", "status"} <= set(raised.value.messages)

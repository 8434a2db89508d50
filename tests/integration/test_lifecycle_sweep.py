"""The inactivity sweep (``iamctl sweep-inactive``) with a controlled clock."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from services.identity.lifecycle import inactivity
from services.identity.lifecycle.cli import commands, sweep_inactive
from services.identity.lifecycle.config import config_from
from tests.integration.helpers.identity import events
from tests.integration.helpers.lifecycle import add_user, audit_rows, login, user_row


@pytest.fixture
def app(lifecycle_app):
    return lifecycle_app


def sweep(app, clock):
    cfg = config_from(app.extensions["portico"].settings, clock=clock)
    with app.extensions["portico"].db.transaction() as session:
        return inactivity.sweep(session, cfg, batch_size=2)


def test_sweep_warns_once_then_deactivates(app, clock):
    old = add_user(app, "old.user", clock=clock)
    clock.advance(days=50)
    fresh = add_user(app, "fresh.user", clock=clock)
    clock.advance(days=56)  # old: day 106 (14 days left); fresh: day 56
    report = sweep(app, clock)
    assert report.warned == [old] and report.deactivated == []
    [warning] = events(app, "identity.user.inactivity_warning")
    assert warning.subject == old and warning.data["days_left"] == 14
    assert warning.data["email"] == "old.user@example.com"
    clock.advance(days=5)
    assert sweep(app, clock).warned == []  # once per period
    clock.advance(days=9, seconds=1)  # day 120 + 1 s
    report = sweep(app, clock)
    assert report.deactivated == [old]
    assert user_row(app, old).status.value == "inactive"
    assert user_row(app, fresh).status.value == "active"
    [deactivated] = events(app, "identity.user.deactivated")
    assert deactivated.data == {"user_id": old, "email": "old.user@example.com",
                                "given_name": "Ana", "preferred_language": "en",
                                "reason": "inactivity"}
    assert audit_rows(app, "user.deactivated")[0]["subject_id"] == old


def test_a_login_starts_a_new_period_and_a_new_warning(app, client, clock):
    user_id = add_user(app, clock=clock)
    clock.advance(days=107)
    assert sweep(app, clock).warned == [user_id]
    clock.advance(hours=1)
    assert login(client).status_code == 303
    clock.advance(days=107)
    assert sweep(app, clock).warned == [user_id]
    assert len(events(app, "identity.user.inactivity_warning")) == 2


def test_company_period_applies_to_the_sweep(app, clock):
    pci = add_user(app, "pci.user", company_id="pci-co", clock=clock)
    other = add_user(app, "other.user", company_id="other-co", clock=clock)
    with app.extensions["portico"].db.transaction() as session:
        inactivity.set_company_period(session, "pci-co", 90)
    clock.advance(days=91)
    assert sweep(app, clock).deactivated == [pci]
    assert user_row(app, other).status.value == "active"


def test_iamctl_sweep_inactive(app, clock, monkeypatch):
    assert {c.name for c in commands} == {"sweep-inactive", "company-inactivity"}
    user_id = add_user(app, clock=clock)
    settings = app.extensions["portico"].settings
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("REDIS_NAMESPACE", settings.redis_namespace)
    monkeypatch.setenv("LOG_JSON", "false")
    monkeypatch.setenv("CLOCK_OFFSET_DAYS", "121")
    result = CliRunner().invoke(sweep_inactive, [], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert '"deactivated": 1' in result.output
    assert user_row(app, user_id).status.value == "inactive"

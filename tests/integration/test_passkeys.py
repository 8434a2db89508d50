"""Passkeys (services/identity/factors/passkeys.py) on the real database, answered by a
software authenticator (tests/support_webauthn.py): registration and sign-in verified;
user verification required without a password; wrong origins, replayed challenges, sign
counters going back, removed passkeys and another user's passkey refused."""

from __future__ import annotations

import json

import pytest

from services.common.domain_errors import Invalid, NotFound
from services.identity import audit
from services.identity.factors import passkeys
from services.identity.factors.passkey_models import WebauthnCredential
from services.identity.models import User
from tests.integration.helpers.identity import Clock, events
from tests.integration.helpers.lifecycle import add_user, audit_rows
from tests.support_webauthn import SoftAuthenticator

RP_ID = "portico.example"
ORIGIN = "https://id.portico.example"
ACTOR = audit.Actor("anonymous", ip="203.0.113.7")


@pytest.fixture
def app(make_app):
    return make_app("identity", webauthn_rp_id=RP_ID, webauthn_origins=[ORIGIN])


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def cfg(app, clock):
    return passkeys.config_from(app.extensions["portico"].settings, clock)


def _tx(app):
    return app.extensions["portico"].db.transaction()


def enrol(app, cfg, user_id, name="Laptop", sid="sid-of-the-account-page",
          authenticator=None, **answer):
    authenticator = authenticator or SoftAuthenticator(ORIGIN)
    with _tx(app) as session:
        options = passkeys.registration_options(session, cfg, session.get(User, user_id), sid)
    with _tx(app) as session:
        passkeys.register(session, cfg, session.get(User, user_id), sid,
                          authenticator.create(options, **answer), name, ACTOR)
    return authenticator


def options_for(app, cfg, sid="sid-of-the-login-page", user_id=None):
    with _tx(app) as session:
        user = session.get(User, user_id) if user_id else None
        return passkeys.authentication_options(session, cfg, sid, user)


def answer(app, cfg, response, sid="sid-of-the-login-page"):
    """(refusal, user id, user verified) of an assertion."""
    with _tx(app) as session:
        result = passkeys.authenticate(session, cfg, sid, response, ACTOR)
        return result.refusal, result.user.id if result.user else None, result.user_verified


def sign_in(app, cfg, authenticator, user_id=None, **kwargs):
    return answer(app, cfg, authenticator.get(options_for(app, cfg, user_id=user_id), **kwargs))


def listed(app, user_id):
    with app.extensions["portico"].db.read() as session:
        return passkeys.list_for(session, session.get(User, user_id))


def refusals(app):
    return [row["detail"]["reason"] for row in audit_rows(app, "passkey.refused")]


def test_a_user_registers_several_named_passkeys_listed_without_any_secret(app, cfg, clock):
    ana = add_user(app)
    enrol(app, cfg, ana, name="Work laptop")
    clock.advance(minutes=1)
    enrol(app, cfg, ana, name="  Phone  ")

    shown = listed(app, ana)
    assert [p["name"] for p in shown] == ["Work laptop", "Phone"]
    assert set(shown[0]) == {"id", "name", "created_at", "last_used_at", "backed_up",
                             "transports", "aaguid"}
    assert shown[0]["transports"] == ["internal", "hybrid"]
    assert shown[0]["last_used_at"] is None
    added = events(app, "identity.factor.added")
    assert [(e.subject, e.data["factor"], e.data["name"]) for e in added] == [
        (ana, "passkey", "Work laptop"), (ana, "passkey", "Phone")]
    assert len(audit_rows(app, "passkey.registered")) == 2


def test_registration_options_require_a_discoverable_verified_passkey_and_exclude_known_ones(
        app, cfg):
    ana = add_user(app)
    laptop = enrol(app, cfg, ana)
    with _tx(app) as session:
        options = json.loads(passkeys.registration_options(
            session, cfg, session.get(User, ana), "sid"))
    assert options["rp"] == {"id": RP_ID, "name": "Portico"}
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert [c["id"] for c in options["excludeCredentials"]] == [laptop.id]


def test_a_registration_is_refused_from_another_origin_without_verification_or_twice(
        app, cfg):
    ana = add_user(app)
    with pytest.raises(passkeys.PasskeyRefused):
        enrol(app, cfg, ana, origin="https://phish.example")
    with pytest.raises(passkeys.PasskeyRefused):
        enrol(app, cfg, ana, user_verified=False)
    with pytest.raises(Invalid) as bad_name:
        enrol(app, cfg, ana, name="   ")
    assert "name" in bad_name.value.errors
    with pytest.raises(passkeys.PasskeyRefused), _tx(app) as session:
        passkeys.register(session, cfg, session.get(User, ana), "sid",
                          {"id": "x"}, "Laptop", ACTOR)
    assert listed(app, ana) == []


def test_a_passwordless_sign_in_is_verified_and_requires_user_verification(app, cfg):
    ana = add_user(app)
    laptop = enrol(app, cfg, ana)
    options = json.loads(options_for(app, cfg))
    assert options["userVerification"] == "required"
    assert options["allowCredentials"] == []
    assert options["rpId"] == RP_ID

    assert sign_in(app, cfg, laptop) == (None, ana, True)
    (shown,) = listed(app, ana)
    assert shown["last_used_at"] is not None
    assert audit_rows(app, "passkey.signed_in")[0]["subject_id"] == ana

    assert sign_in(app, cfg, laptop, user_verified=False) == ("invalid", None, False)
    assert refusals(app) == ["invalid"]


def test_a_passkey_as_second_factor_is_offered_only_the_users_own_passkeys(app, cfg):
    ana, ben = add_user(app), add_user(app, "ben.ruiz")
    laptop = enrol(app, cfg, ana)
    enrol(app, cfg, ben)
    options = json.loads(options_for(app, cfg, user_id=ana))
    assert [c["id"] for c in options["allowCredentials"]] == [laptop.id]
    assert options["userVerification"] == "preferred"
    assert sign_in(app, cfg, laptop, user_id=ana, user_verified=False) == (None, ana, False)
    with pytest.raises(NotFound):
        options_for(app, cfg, user_id=add_user(app, "carla.diaz"))


def test_an_assertion_for_another_origin_or_rp_is_refused(app, cfg):
    ana = add_user(app)
    laptop = enrol(app, cfg, ana)
    assert sign_in(app, cfg, laptop, origin="https://phish.example")[0] == "invalid"
    assert sign_in(app, cfg, laptop, rp_id="phish.example")[0] == "invalid"
    assert refusals(app) == ["invalid", "invalid"]


def test_a_challenge_works_once_for_its_own_session_until_it_expires(app, cfg, clock):
    ana = add_user(app)
    laptop = enrol(app, cfg, ana)
    response = laptop.get(options_for(app, cfg))
    assert answer(app, cfg, response)[1] == ana
    assert answer(app, cfg, response)[0] == "challenge"

    elsewhere = laptop.get(options_for(app, cfg, sid="sid-of-the-victim"))
    assert answer(app, cfg, elsewhere, sid="sid-of-the-attacker")[0] == "challenge"
    assert answer(app, cfg, elsewhere, sid="sid-of-the-victim")[0] is None

    first = laptop.get(options_for(app, cfg))
    second = laptop.get(options_for(app, cfg))
    assert answer(app, cfg, first)[0] == "challenge", "a new ceremony voids the session's last"
    clock.advance(seconds=cfg.timeout_seconds + 1)
    assert answer(app, cfg, second)[0] == "challenge"
    assert refusals(app) == ["challenge"] * 4


def test_a_sign_count_that_does_not_increase_is_refused_and_audited(app, cfg):
    ana = add_user(app)
    laptop = enrol(app, cfg, ana)
    assert sign_in(app, cfg, laptop, sign_count=5)[1] == ana
    assert sign_in(app, cfg, laptop, sign_count=5)[0] == "sign_count"
    assert sign_in(app, cfg, laptop, sign_count=3)[0] == "sign_count"
    assert sign_in(app, cfg, laptop, sign_count=6)[1] == ana
    cloned = audit_rows(app, "passkey.refused")
    assert [(r["subject_id"], r["detail"]["stored"], r["detail"]["presented"])
            for r in cloned] == [(ana, 5, 5), (ana, 5, 3)]


def test_an_authenticator_that_never_counts_keeps_signing_in(app, cfg):
    ana = add_user(app)
    synced = enrol(app, cfg, ana)
    assert sign_in(app, cfg, synced, sign_count=0)[1] == ana
    assert sign_in(app, cfg, synced, sign_count=0)[1] == ana
    assert not passkeys.counter_advanced(7, 0)


def test_a_removed_passkey_no_longer_signs_in(app, cfg):
    ana, ben = add_user(app), add_user(app, "ben.ruiz")
    laptop = enrol(app, cfg, ana)
    (shown,) = listed(app, ana)
    with pytest.raises(NotFound), _tx(app) as session:
        passkeys.remove(session, cfg, session.get(User, ben), shown["id"], ACTOR)
    with _tx(app) as session:
        passkeys.remove(session, cfg, session.get(User, ana), shown["id"], ACTOR)

    assert listed(app, ana) == []
    (removed,) = events(app, "identity.factor.removed")
    assert removed.data["factor_id"] == shown["id"] and removed.data["factor"] == "passkey"
    assert sign_in(app, cfg, laptop) == ("unknown_passkey", None, False)


def test_another_users_passkey_cannot_sign_in_as_the_user(app, cfg):
    ana, ben = add_user(app), add_user(app, "ben.ruiz")
    enrol(app, cfg, ana)
    bens = enrol(app, cfg, ben)
    assert sign_in(app, cfg, bens, user_id=ana)[0] == "wrong_user"
    bens.user_handle = ana.encode()
    assert sign_in(app, cfg, bens)[0] == "wrong_user"
    assert [r["subject_id"] for r in audit_rows(app, "passkey.refused")] == [ana, ben]


def test_a_passkey_is_renamed_by_its_owner_only(app, cfg):
    ana, ben = add_user(app), add_user(app, "ben.ruiz")
    enrol(app, cfg, ana)
    (shown,) = listed(app, ana)
    with _tx(app) as session:
        passkeys.rename(session, cfg, session.get(User, ana), shown["id"], "Old phone", ACTOR)
    with pytest.raises(NotFound), _tx(app) as session:
        passkeys.rename(session, cfg, session.get(User, ben), shown["id"], "Mine", ACTOR)
    with pytest.raises(Invalid), _tx(app) as session:
        passkeys.rename(session, cfg, session.get(User, ana), shown["id"], "x" * 101, ACTOR)
    assert [p["name"] for p in listed(app, ana)] == ["Old phone"]
    with app.extensions["portico"].db.read() as session:
        assert session.get(WebauthnCredential, shown["id"]).name == "Old phone"

"""Emailed single-use links under concurrency: a password-reset link and an email-change
link each work once however many requests carry them together, and wrong security
answers sent together void the reset link at the threshold."""

from __future__ import annotations

import pytest

from services.identity.lifecycle import profile
from services.identity.lifecycle.config import config_from
from services.identity.lifecycle.domain import SYSTEM
from services.identity.lifecycle.models import PasswordReset
from services.identity.models import User

pytestmark = pytest.mark.concurrency

NEW_PASSWORD = "Quiet-Lantern-77#"


def _reset_link(identity, username: str) -> tuple[str, str]:
    """Ask for a reset of ``username``'s password: (link token, the question's answer)."""
    client = identity.client()
    assert client.post("/v1/password-resets",
                       json={"username_or_email": username}).status_code == 202
    token = identity.sealed_token("identity.password_reset.requested", "reset_url")
    question = client.post("/v1/password-resets/question", json={"token": token})
    assert question.status_code == 200, question.get_json()
    return token, identity.answers[question.get_json()["question"]]


def _complete(identity, token: str, answer: str):
    return identity.client().post("/v1/password-resets/complete", json={
        "token": token, "answer": answer, "password": NEW_PASSWORD,
        "password_confirm": NEW_PASSWORD})


def _kinds(answers) -> set[str]:
    return {a.get_json()["type"].rsplit("/", 1)[-1] for a in answers}


def test_a_reset_link_used_together_changes_the_password_once(identity, race, contenders,
                                                              rounds):
    for round_ in range(rounds):
        username = f"ana.{round_}"
        user_id = identity.add_user(username)
        token, answer = _reset_link(identity, username)
        answers = race(contenders, lambda i, token=token, answer=answer: _complete(
            identity, token, answer))
        codes = [a.status_code for a in answers]
        assert sorted(codes) == [200] + [400] * (contenders - 1), (round_, codes)
        assert _kinds(a for a in answers if a.status_code == 400) == {"reset-link-invalid"}
        changed = [e for e in identity.events("identity.password.changed")
                   if e.subject == user_id]
        assert len(changed) == 1, round_
        assert identity.login_form()[1](username, NEW_PASSWORD).status_code == 303


def test_wrong_answers_sent_together_void_the_link_at_the_threshold(identity, race,
                                                                   contenders, rounds):
    threshold = identity.ctx.settings.password_reset_max_answers
    assert threshold < contenders
    for round_ in range(rounds):
        username = f"ana.{round_}"
        user_id = identity.add_user(username)
        token, answer = _reset_link(identity, username)
        answers = race(contenders, lambda i, token=token: _complete(
            identity, token, f"wrong answer {i}"))
        assert all(a.status_code == 400 for a in answers), round_
        with identity.db.read() as session:
            reset = session.query(PasswordReset).filter_by(user_id=user_id).one()
            voided, failed = reset.voided_at, reset.failed_answers
        assert voided is not None and failed >= threshold, (round_, failed)
        # Voided: the right answer no longer works.
        late = _complete(identity, token, answer)
        assert late.status_code == 400 and _kinds([late]) == {"reset-link-invalid"}


def test_an_email_change_link_used_together_changes_the_email_once(identity, race,
                                                                   contenders, rounds):
    cfg = config_from(identity.ctx.settings)
    for round_ in range(rounds):
        user_id = identity.add_user(f"ana.{round_}")
        new_email = f"ana.new.{round_}@example.com"
        with identity.db.transaction() as session:
            tracking = profile.request_email_change(session, cfg, session.get(User, user_id),
                                                    new_email, SYSTEM)
        token = identity.sealed_token("identity.contact.change_requested",
                                      "verification_url")
        answers = race(contenders, lambda i, token=token: identity.client().post(
            "/v1/me/email-verifications", json={"token": token}))
        codes = [a.status_code for a in answers]
        assert sorted(codes) == [200] + [400] * (contenders - 1), (round_, codes)
        assert _kinds(a for a in answers if a.status_code == 400) == {"email-link-invalid"}
        changed = [e for e in identity.events("identity.contact.changed")
                   if e.tracking_number == tracking]
        assert len(changed) == 1, round_
        with identity.db.read() as session:
            assert session.get(User, user_id).email == new_email

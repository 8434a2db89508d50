"""Enrollment and first login under concurrency: a verification link issues one access
code, one activation ticket makes one account, and wrong PIN/Word attempts sent together
lock the enrollment at the threshold."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from services.identity.enrollment.models import AccessCode, Enrollment
from services.identity.models import User

pytestmark = pytest.mark.concurrency


def _credentials(ticket: str, username: str) -> dict:
    return {"activation_token": ticket, "username": username, "password": "Velvet-Harbor-42!",
            "password_confirm": "Velvet-Harbor-42!",
            "security_questions": [{"question": "first_pet", "answer": "Rex"},
                                   {"question": "birth_city", "answer": "Toluca"},
                                   {"question": "first_job", "answer": "Cashier"}]}


def test_a_verification_link_followed_together_issues_one_access_code(identity, race,
                                                                     contenders, rounds):
    for round_ in range(rounds):
        enrollment_id, token = identity.enroll(round_)
        answers = race(contenders, lambda i, token=token: identity.client().post(
            "/v1/enrollments/verify", json={"token": token}))
        codes = [a.status_code for a in answers]
        assert sorted(codes) == [200] + [400] * (contenders - 1), (round_, codes)
        assert {a.get_json()["type"].rsplit("/", 1)[-1] for a in answers
                if a.status_code == 400} == {"verification-link-invalid"}
        assert len(identity.access_codes(enrollment_id)) == 1, round_


def test_one_ticket_posted_together_creates_one_account(identity, race, contenders, rounds):
    for round_ in range(rounds):
        enrollment_id, code = identity.enrollment_with_code(round_)
        confirmed = identity.activate(identity.client(), code)
        assert confirmed.status_code == 200, confirmed.get_json()
        ticket = confirmed.get_json()["activation_token"]
        answers = race(contenders, lambda i, ticket=ticket, r=round_: identity.client().post(
            "/v1/activation/credentials", json=_credentials(ticket, f"user{r}x{i}")))
        codes = [a.status_code for a in answers]
        assert sorted(codes) == [201] + [400] * (contenders - 1), (round_, codes)
        losers = [a.get_json() for a in answers if a.status_code == 400]
        assert {p["type"].rsplit("/", 1)[-1] for p in losers} == {"activation-expired"}
        with identity.db.read() as session:
            users = session.scalar(select(func.count()).select_from(User).where(
                User.email == f"ana{round_}@example.com"))
            enrollment = session.get(Enrollment, enrollment_id)
            status, owner = enrollment.status.value, enrollment.user_id
            used = session.scalars(select(AccessCode.used_at).where(
                AccessCode.enrollment_id == enrollment_id)).all()
        assert users == 1, round_
        assert status == "activated"
        assert owner == answers[codes.index(201)].get_json()["user_id"]
        assert len(used) == 1 and used[0] is not None
        activated = [e for e in identity.events("identity.user.activated")
                     if e.data["enrollment_id"] == enrollment_id]
        assert len(activated) == 1


def test_wrong_pins_sent_together_lock_the_enrollment_at_the_threshold(identity, race,
                                                                      contenders, rounds):
    threshold = identity.ctx.settings.activation_max_attempts
    assert threshold < contenders
    for round_ in range(rounds):
        enrollment_id, code = identity.enrollment_with_code(round_)
        answers = race(contenders, lambda i, code=code: identity.activate(
            identity.client(), code, pin=f"{9000 + i}"))
        assert [a.status_code for a in answers] == [400] * contenders
        with identity.db.read() as session:
            enrollment = session.get(Enrollment, enrollment_id)
            status, attempts = enrollment.status.value, enrollment.failed_attempts
        assert status == "locked", (round_, attempts)
        assert attempts >= threshold
        locked = [e for e in identity.events("identity.enrollment.locked")
                  if e.data["enrollment_id"] == enrollment_id]
        assert len(locked) == 1, round_
        # Locked: the right trio is refused too.
        assert identity.activate(identity.client(), code).status_code == 400


def test_one_username_chosen_together_in_many_activations_goes_to_one(identity, race,
                                                                      contenders):
    tickets = []
    for n in range(contenders):
        _, code = identity.enrollment_with_code(50 + n)
        tickets.append(identity.activate(identity.client(), code).get_json()["activation_token"])
    answers = race(contenders, lambda i: identity.client().post(
        "/v1/activation/credentials", json=_credentials(tickets[i], "same.name")))
    codes = [a.status_code for a in answers]
    assert sorted(codes) == [201] + [422] * (contenders - 1), codes
    assert all("username" in a.get_json()["errors"] for a in answers if a.status_code == 422)
    # A loser's ticket was not used up: it may choose another name.
    loser = codes.index(422)
    again = identity.client().post("/v1/activation/credentials",
                                   json=_credentials(tickets[loser], "another.name"))
    assert again.status_code == 201, again.get_json()

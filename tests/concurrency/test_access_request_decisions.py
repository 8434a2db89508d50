"""Access-request transitions under concurrency: exactly one decision wins, the others
are 409, and only the winner's grants exist (DESIGN.md §6, "Decisions hold under
concurrency")."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from sqlalchemy import select

from services.permissions.access_requests import expire_pending_requests
from services.permissions.models import AccessRequest, Grant

pytestmark = pytest.mark.concurrency


@pytest.fixture
def company(permissions, rounds):
    """Company ``co-a`` with principal ``pa`` and one requester per round."""
    for user in ["pa", *(f"u{i}" for i in range(rounds))]:
        permissions.activate(user, "co-a")
    permissions.designate("co-a", "pa")
    return permissions


def _request(w, requester: str) -> str:
    response = w.client().post("/v1/access-requests", headers=w.headers(requester), json={
        "entitlements": ["reports.export"], "justification": "needed for my job"})
    assert response.status_code == 201, response.json
    return response.json["id"]


def _decisions(w, request_id: str) -> list[str]:
    return [e["type"] for e in w.events("permissions.request.approved")
            + w.events("permissions.request.rejected")
            if e["data"]["request_id"] == request_id]


def test_approve_and_reject_sent_together_have_one_winner(company, race, contenders, rounds):
    w = company
    principal = w.headers("pa")
    for round_ in range(rounds):
        request_id = _request(w, f"u{round_}")
        verbs = ["approve" if i % 2 else "reject" for i in range(contenders)]

        def decide(i: int, request_id=request_id, verbs=verbs):
            return w.client().post(f"/v1/access-requests/{request_id}/{verbs[i]}",
                                   json={"comment": "ok"}, headers=principal)

        answers = race(contenders, decide)
        codes = [a.status_code for a in answers]
        assert sorted(codes) == [200] + [409] * (contenders - 1), (round_, codes)
        winner = verbs[codes.index(200)]
        losers = [a for a in answers if a.status_code == 409]
        assert all(a.mimetype == "application/problem+json" for a in losers)
        assert {a.json["type"].rsplit("/", 1)[-1] for a in losers} == {"illegal-transition"}
        with w.db.read() as session:
            status = session.get(AccessRequest, request_id).status
            grants = session.scalars(select(Grant).where(
                Grant.source == f"request:{request_id}")).all()
        assert status == {"approve": "approved", "reject": "rejected"}[winner]
        assert len(grants) == (1 if winner == "approve" else 0), round_
        assert _decisions(w, request_id) == [f"permissions.request.{status}"]


def test_approvals_sent_together_grant_once(company, race, contenders, rounds):
    w = company
    principal = w.headers("pa")
    request_id = _request(w, "u0")
    answers = race(contenders, lambda i: w.client().post(
        f"/v1/access-requests/{request_id}/approve", json={"comment": "ok"},
        headers=principal))
    assert sorted(a.status_code for a in answers) == [200] + [409] * (contenders - 1)
    with w.db.read() as session:
        grants = session.scalars(select(Grant).where(
            Grant.source == f"request:{request_id}")).all()
    assert len(grants) == 1
    assert _decisions(w, request_id) == ["permissions.request.approved"]


def test_cancel_racing_approval_has_one_winner(company, race, contenders, rounds):
    w = company
    for round_ in range(rounds):
        requester = f"u{round_}"
        request_id = _request(w, requester)

        def act(i: int, request_id=request_id, requester=requester):
            verb, who = ("approve", "pa") if i % 2 else ("cancel", requester)
            return verb, w.client().post(f"/v1/access-requests/{request_id}/{verb}",
                                         json={"comment": "ok"}, headers=w.headers(who))

        answers = race(contenders, act)
        codes = [a.status_code for _, a in answers]
        assert sorted(codes) == [200] + [409] * (contenders - 1), (round_, codes)
        winner = answers[codes.index(200)][0]
        with w.db.read() as session:
            status = session.get(AccessRequest, request_id).status
            grants = session.scalars(select(Grant).where(
                Grant.source == f"request:{request_id}")).all()
        assert status == {"approve": "approved", "cancel": "cancelled"}[winner]
        assert len(grants) == (1 if winner == "approve" else 0)


def test_the_expiry_job_racing_approvals_has_one_winner(company, race, contenders, rounds):
    """The job (run by several workers at once) expires what the principal approves at the
    same moment: one of them wins; an expired request has no grant."""
    w = company
    for round_ in range(rounds):
        request_id = _request(w, f"u{round_}")
        with w.db.read() as session:
            expires_at = session.get(AccessRequest, request_id).expires_at
        after = expires_at.replace(tzinfo=expires_at.tzinfo or UTC) + timedelta(seconds=1)

        def act(i: int, request_id=request_id, after=after):
            if i % 2:
                answer = w.client().post(f"/v1/access-requests/{request_id}/approve",
                                         json={"comment": "ok"}, headers=w.headers("pa"))
                return "approve", int(answer.status_code == 200), answer.status_code
            with w.db.transaction() as session:
                expired, _ = expire_pending_requests(session, after, reminder_days=0)
            return "expire", expired, None

        outcomes = race(contenders, act)
        assert sum(won for _, won, _ in outcomes) == 1, (round_, outcomes)
        assert {code for verb, _, code in outcomes if verb == "approve"} <= {200, 409}
        winner = next(verb for verb, won, _ in outcomes if won)
        with w.db.read() as session:
            status = session.get(AccessRequest, request_id).status
            grants = session.scalars(select(Grant).where(
                Grant.source == f"request:{request_id}")).all()
        assert status == {"approve": "approved", "expire": "expired"}[winner]
        assert len(grants) == (1 if winner == "approve" else 0)

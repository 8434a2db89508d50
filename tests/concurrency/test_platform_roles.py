"""Platform roles under concurrency: the same grant or revocation sent together by two
platform administrators' tools changes the row once, records it once, and nobody gets a
500 (DESIGN.md §6, "Decisions hold under concurrency")."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from services.common.events import utcnow
from services.permissions.models import AuditEntry, PlatformRole
from services.permissions.platform import operator_grants_platform_role

pytestmark = pytest.mark.concurrency
WHY = {"why": "joins the help desk"}


@pytest.fixture
def staff(permissions):
    """``root`` is a platform administrator; ``agent`` is a person of no company."""
    for user in ("root", "agent"):
        permissions.activate(user, None)
    with permissions.db.transaction() as session:
        operator_grants_platform_role(session, user_id="root", role="platform_admin",
                                      why="test set-up", now=utcnow())
    return permissions


def _audited(w, action: str) -> int:
    with w.db.read() as session:
        return len(session.scalars(select(AuditEntry).where(
            AuditEntry.action == action, AuditEntry.target_id == "agent")).all())


def test_a_grant_sent_together_is_recorded_once(staff, race, contenders, rounds):
    w = staff
    url = "/admin/v1/platform-roles/agent/helpdesk_agent"
    for round_ in range(rounds):
        answers = race(contenders, lambda _: w.client().put(url, json=WHY,
                                                            headers=w.headers("root")))
        assert [a.status_code for a in answers] == [200] * contenders, round_
        revoked = race(contenders, lambda _: w.client().delete(url, json=WHY,
                                                               headers=w.headers("root")))
        assert sorted(a.status_code for a in revoked) == [204] + [404] * (contenders - 1)
        with w.db.read() as session:
            assert session.scalars(select(PlatformRole).where(
                PlatformRole.user_id == "agent")).all() == []
        assert _audited(w, "platform_role.granted") == round_ + 1
        assert _audited(w, "platform_role.revoked") == round_ + 1
        assert len(w.events("permissions.platform_role.granted")) == round_ + 2  # + root

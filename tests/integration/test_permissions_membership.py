"""Company membership is approved (issue 24, item 2): a newcomer naming a company that
already has members gets nothing until the company's principal or the help desk admits
them; deciding is one conditional update (one winner); the company's accounts reach
every member's cached decisions at once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from services.common import tracking_numbers
from services.common.events import utcnow
from services.permissions.memberships import expire_pending_memberships
from services.permissions.models import (
    AuditEntry,
    Company,
    CompanyAccount,
    Grant,
    MembershipRequest,
    User,
)

A_ACCOUNTS = [("11111", "fp-aaaa-1")]
STRANGER_ACCOUNTS = [("99999", "fp-ssss-9"), ("88888", "fp-ssss-8")]


@pytest.fixture
def company(world):
    """Company A (``co-a``): its principal ``pa`` founded it with account 11111, ``ua`` is
    a member; company B: principal ``pb``; the help desk ``hd-1``; and a stranger who
    enrolled with A's tax id, typed another company name and named two accounts of theirs.
    The clock is the real one: the consumer dates membership requests by it."""
    w = world
    w.clock.moment = utcnow()
    w.make_helpdesk()
    w.activate("pa", "co-a", accounts=A_ACCOUNTS)
    w.activate("ua", "co-a")
    w.activate("pb", "co-b", accounts=[("33333", "fp-bbbb-3")])
    assert w.designate("co-a", "pa").status_code == 200
    assert w.designate("co-b", "pb").status_code == 200
    w.deliver("identity.user.activated", w.activation_data(
        "stranger", "co-a", accounts=STRANGER_ACCOUNTS, company_name="Stranger Holdings"))
    return w


def request_of(w, user_id: str = "stranger") -> dict:
    [item] = w.client.get("/v1/membership-requests?view=mine", headers=w.headers(user_id)).json[
        "items"]
    return item


def decide(w, request_id: str, verb: str, sub: str, **body):
    return w.client.post(f"/v1/membership-requests/{request_id}/{verb}",
                         json={"comment": "checked", **body}, headers=w.headers(sub))


def company_accounts(w, company_id: str = "co-a") -> set[str]:
    with w.db.read() as session:
        return {a.last5 for a in session.query(CompanyAccount).filter_by(company_id=company_id)}


def test_a_stranger_naming_a_companys_tax_id_gets_nothing_of_it(company):
    w = company
    a_principal_account = {"company_id": "co-a", "account_last5": "11111"}
    assert w.check("pa", "cards.view", a_principal_account) == {"allowed": True,
                                                                 "reason": "granted"}
    # No grant, no role: every company entitlement is refused, with the reason.
    assert w.check("stranger", "cards.view", a_principal_account) == {
        "allowed": False, "reason": "membership_pending"}
    assert w.check("stranger", "transactions.track") == {"allowed": False,
                                                          "reason": "membership_pending"}
    with w.db.read() as session:
        assert session.query(Grant).filter_by(user_id="stranger").count() == 0
        assert session.get(User, "stranger").membership == "pending"
        # A's name and accounts are A's: the newcomer changed neither.
        assert session.get(Company, "co-a").name == "Company co-a"
    assert company_accounts(w) == {"11111"}
    mine = w.client.get("/v1/users/stranger/entitlements", headers=w.headers("stranger")).json
    assert mine["entitlements"] == [] and mine["company_id"] == "co-a"
    assert w.client.get("/v1/users/stranger/home", headers=w.headers("stranger")).json[
        "sections"] == []
    # A membership request with a tracking number, announced to A's principal.
    request = request_of(w)
    assert tracking_numbers.is_valid(request["tracking_number"])
    assert (request["status"], request["company_id"], request["accounts"]) == (
        "pending", "co-a", ["99999", "88888"])
    [event] = [e for e in w.events("permissions.membership.requested")
               if e["subject"] == "stranger"]
    assert (event["company_id"], event["tracking_number"]) == ("co-a",
                                                               request["tracking_number"])
    assert event["data"]["principal_admin_id"] == "pa"
    assert event["data"]["newcomer_name"] == "Stranger Tester"


def test_a_pending_newcomer_is_in_no_company_view_and_cannot_ask_for_access(company):
    w = company
    asked = w.request_access("stranger", ["cards.view"])
    assert asked.status_code == 403 and asked.mimetype == "application/problem+json"
    on_behalf = w.request_access("pa", ["cards.view"], target_user_id="stranger")
    assert on_behalf.status_code == 422
    assert on_behalf.json["errors"] == {"target_user_id": ["No such user."]}
    # A's principal does not see the newcomer's grants; the help desk does.
    assert w.client.get("/v1/users/stranger/entitlements",
                        headers=w.headers("pa")).status_code == 404
    assert w.client.get("/v1/users/stranger/entitlements",
                        headers=w.headers("hd-1")).status_code == 200
    # Nor can the newcomer be made an administrator of A.
    made = w.designate("co-a", "stranger")
    assert made.status_code == 422 and "user_id" in made.json["errors"]
    secondary = w.client.put("/admin/v1/companies/co-a/administrators/stranger",
                             json={"why": "x"}, headers=w.headers("pa"))
    assert secondary.status_code == 422
    assert w.client.get("/admin/v1/companies/co-a",
                        headers=w.headers("stranger")).status_code == 404


def test_the_same_activation_twice_makes_one_request(world):
    w = world
    w.activate("pa", "co-a", accounts=A_ACCOUNTS)
    data = w.activation_data("newbie", "co-a", accounts=STRANGER_ACCOUNTS)
    envelope = w.deliver("identity.user.activated", data)
    w.deliver("identity.user.activated", data, envelope)  # redelivered, same event
    w.deliver("identity.user.activated", data)  # the same fact in a new envelope
    with w.db.read() as session:
        assert session.query(MembershipRequest).filter_by(user_id="newbie").count() == 1
    assert len(w.events("permissions.membership.requested")) == 1


def test_the_principal_approves_the_newcomer_and_the_accounts_they_named(company):
    w = company
    request = request_of(w)
    lists = {who: w.client.get("/v1/membership-requests?view=to_decide",
                               headers=w.headers(who)).json["items"]
             for who in ("pa", "pb", "ua", "hd-1")}
    assert [i["id"] for i in lists["pa"]] == [request["id"]]
    assert [i["id"] for i in lists["hd-1"]] == [request["id"]]
    assert lists["pb"] == [] and lists["ua"] == []

    approved = decide(w, request["id"], "approve", "pa", comment="known to us")
    assert approved.status_code == 200, approved.json
    assert (approved.json["status"], approved.json["decided_by"]) == ("approved", "pa")
    assert w.check("stranger", "cards.view", {"company_id": "co-a", "account_last5": "11111"}
                   ) == {"allowed": True, "reason": "granted"}
    with w.db.read() as session:
        assert session.get(User, "stranger").membership == "member"
        assert session.get(Company, "co-a").name == "Company co-a"
        roles = {g.source for g in session.query(Grant).filter_by(user_id="stranger")}
        trail = [(a.action, a.actor_id, a.why) for a in session.query(AuditEntry)
                 .filter_by(target_id=request["id"]).order_by(AuditEntry.id)]
    assert roles == {"role:account_manager"}
    assert company_accounts(w) == {"11111", "99999", "88888"}
    assert trail == [("membership.requested", "stranger", None),
                     ("membership.approved", "pa", "known to us")]
    [event] = [e for e in w.events("permissions.membership.approved")
               if e["subject"] == "stranger"]
    assert event["tracking_number"] == request["tracking_number"]
    assert event["data"]["decided_by"] == "pa" and event["data"]["principal_admin_id"] == "pa"
    # One decision only.
    before = len(w.events())
    for verb in ("approve", "reject"):
        again = decide(w, request["id"], verb, "pa")
        assert again.status_code == 409 and again.json["type"].endswith("/illegal-transition")
    assert len(w.events()) == before


def test_approval_may_attach_only_some_of_the_named_accounts(company):
    w = company
    request = request_of(w)
    unknown = decide(w, request["id"], "approve", "pa", accounts=["99999", "12345"])
    assert unknown.status_code == 422
    assert unknown.json["errors"] == {"accounts.1": ["Not an account the newcomer named."]}
    assert request_of(w)["status"] == "pending"
    some = decide(w, request["id"], "approve", "pa", accounts=["fp-ssss-9"])
    assert some.status_code == 200, some.json
    assert company_accounts(w) == {"11111", "99999"}
    [event] = [e for e in w.events("permissions.membership.approved")
               if e["subject"] == "stranger"]
    assert (event["data"]["accounts"], event["data"]["accounts_attached"]) == (
        ["99999", "88888"], ["99999"])


def test_only_the_companys_principal_or_the_help_desk_decides(company):
    w = company
    request = request_of(w)
    w.client.put("/admin/v1/companies/co-a/administrators/ua", json={"why": "backup"},
                 headers=w.headers("hd-1"))
    refused = {who: decide(w, request["id"], "approve", who)
               for who in ("pb", "ua", "stranger", "nobody")}
    refused["secondary rejecting"] = decide(w, request["id"], "reject", "ua")
    for who, response in refused.items():
        assert response.status_code == 403, who
        assert response.mimetype == "application/problem+json", who
    for who in ("pb", "nobody"):
        looked = w.client.get(f"/v1/membership-requests/{request['id']}",
                              headers=w.headers(who))
        assert looked.status_code == 404, who
    assert w.check("stranger", "cards.view")["reason"] == "membership_pending"
    by_help_desk = decide(w, request["id"], "approve", "hd-1")
    assert by_help_desk.status_code == 200 and by_help_desk.json["decided_by"] == "hd-1"
    assert w.check("stranger", "cards.view")["allowed"] is True


def test_rejection_leaves_the_newcomer_without_anything(company):
    w = company
    request = request_of(w)
    rejected = decide(w, request["id"], "reject", "pa", comment="not one of ours")
    assert rejected.status_code == 200 and rejected.json["status"] == "rejected"
    assert w.check("stranger", "cards.view") == {"allowed": False,
                                                  "reason": "membership_pending"}
    with w.db.read() as session:
        assert session.get(User, "stranger").membership == "rejected"
        assert session.query(Grant).filter_by(user_id="stranger").count() == 0
    assert company_accounts(w) == {"11111"}
    [event] = w.events("permissions.membership.rejected")
    assert event["data"]["comment"] == "not one of ours"
    assert decide(w, request["id"], "approve", "hd-1").status_code == 409
    assert w.request_access("stranger", ["cards.view"]).status_code == 403


def test_a_request_nobody_decides_expires(company):
    w = company
    request = request_of(w)
    ttl = w.app.extensions["portico"].settings.request_ttl_days

    def sweep():
        with w.session() as session:
            return expire_pending_memberships(session, w.clock())

    assert sweep() == 0
    w.clock.advance(days=ttl, minutes=1)
    late = decide(w, request["id"], "approve", "pa")
    assert late.status_code == 409  # past expires_at, even before the sweep
    assert sweep() == 1 and sweep() == 0
    assert request_of(w)["status"] == "expired"
    [event] = w.events("permissions.membership.expired")
    assert event["data"]["decided_by"] == "system"
    assert w.check("stranger", "cards.view")["reason"] == "membership_pending"


def test_accounts_attached_at_approval_reach_every_members_cached_decisions_at_once(company):
    """Company-level changes bump every company user's cache version: the principal's
    decision on the newcomer's account is refreshed on the next check, not in 60 s."""
    w = company
    invalidator = w.app.extensions["permissions.invalidator"]
    versions = lambda: {u: int(invalidator.redis.get(invalidator.version_key(u)) or 0)  # noqa: E731
                        for u in ("pa", "ua", "pb")}
    on_new_account = {"company_id": "co-a", "account_last5": "99999"}
    assert w.check("pa", "cards.view", on_new_account)["reason"] == "unknown_account"
    assert w.check("ua", "cards.view", on_new_account)["reason"] == "unknown_account"
    before = versions()
    assert decide(w, request_of(w)["id"], "approve", "pa").status_code == 200
    after = versions()
    assert after["pa"] > before["pa"] and after["ua"] > before["ua"]
    assert after["pb"] == before["pb"]  # another company's users are not touched
    assert w.check("pa", "cards.view", on_new_account) == {"allowed": True, "reason": "granted"}
    assert w.check("ua", "cards.view", on_new_account) == {"allowed": True, "reason": "granted"}


@pytest.mark.concurrency
@pytest.mark.parametrize("round_", range(3))
def test_of_twenty_concurrent_decisions_exactly_one_wins(company, round_):
    """Approvals and rejections sent together (PostgreSQL in CI: each thread its own
    connection): one 200, nineteen 409, and the state is the winner's."""
    w = company
    request_id = request_of(w)["id"]
    clients = [w.app.test_client() for _ in range(20)]
    headers = [w.headers("pa" if i % 2 else "hd-1") for i in range(20)]
    start = threading.Barrier(20)
    answers: list = [None] * 20

    def run(i: int) -> None:
        start.wait()
        answers[i] = clients[i].post(f"/v1/membership-requests/{request_id}/"
                                     f"{'approve' if i % 2 else 'reject'}",
                                     json={"comment": f"decider {i}"}, headers=headers[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] + [409] * 19, codes
    [winner] = [(i, a.json) for i, a in enumerate(answers) if a.status_code == 200]
    final = request_of(w)
    assert final["status"] == winner[1]["status"] and final["comment"] == f"decider {winner[0]}"
    decided = [e for e in w.events() if e["subject"] == "stranger" and e["type"] in (
        "permissions.membership.approved", "permissions.membership.rejected")]
    assert len(decided) == 1
    with w.db.read() as session:
        grants = session.query(Grant).filter_by(user_id="stranger").count()
    assert (grants > 0) == (final["status"] == "approved")


@pytest.mark.concurrency
def test_of_twenty_concurrent_first_activations_one_founds_the_company(world):
    """Who founds a company is decided one activation at a time (the company row's
    insert, then its lock): one member, nineteen newcomers, whatever the interleaving."""
    w = world
    start = threading.Barrier(20)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        start.wait()
        try:
            w.deliver("identity.user.activated", w.activation_data(
                f"early-{i}", "co-race", accounts=[(f"{i:05d}", f"fp-race-{i}")]))
        except BaseException as exc:  # reported below, with the others
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with w.db.read() as session:
        kinds = sorted(u.membership for u in session.query(User).filter_by(company_id="co-race"))
        founder = session.query(User).filter_by(company_id="co-race", membership="member").one().id
        assert session.query(MembershipRequest).filter_by(company_id="co-race").count() == 19
    assert kinds == ["member"] + ["pending"] * 19
    assert company_accounts(w, "co-race") == {f"{int(founder.split('-')[1]):05d}"}


def test_a_company_without_an_approved_member_is_founded_by_the_first_to_activate(world):
    """The first member keeps today's behaviour: the company gets their name and accounts."""
    w = world
    w.deliver("identity.user.activated", w.activation_data(
        "founder", "co-new", accounts=A_ACCOUNTS, company_name="New Co"))
    with w.db.read() as session:
        assert session.get(User, "founder").membership == "member"
        assert session.get(Company, "co-new").name == "New Co"
        assert session.query(MembershipRequest).count() == 0
    assert company_accounts(w, "co-new") == {"11111"}
    assert w.check("founder", "cards.view")["allowed"] is True


def test_requests_expire_from_their_own_creation_time(company):
    with company.db.read() as session:
        req = session.query(MembershipRequest).filter_by(user_id="stranger").one()
        assert req.expires_at - req.created_at == timedelta(days=14)

"""GET /v1/users/<id>/home: what a user's entitlements allow, in their language."""

from __future__ import annotations


def home(w, user, viewer=None, **kwargs):
    return w.client.get(f"/v1/users/{user}/home", headers={**w.headers(viewer or user),
                                                           **kwargs.pop("headers", {})},
                        **kwargs)


def keys(response):
    assert response.status_code == 200, response.json
    return [s["key"] for s in response.json["sections"]]


def test_two_users_with_different_grants_get_different_pages_and_the_same_user_the_same(
        company_a):
    w = company_a
    manager, principal = home(w, "ua"), home(w, "pa")
    assert keys(manager) == ["cards", "tracking", "access-request", "profile"]
    assert "approvals" in keys(principal) and "users-manage" in keys(principal)
    assert keys(manager) != keys(principal)
    assert home(w, "ua").json == manager.json
    request_id = w.request_access("ua", ["reports.view"]).json["id"]
    w.decide(request_id, "approve", "pa")
    assert "reports" in keys(home(w, "ua"))


def test_the_page_speaks_the_users_language(company_a):
    w = company_a
    w.activate("maria", "co-a", lang="es")
    spanish = home(w, "maria")
    assert spanish.json["language"] == "es"
    assert spanish.json["sections"][0] == {"key": "cards", "title": "Tarjetas", "url": "/cards",
                                           "entitlement": "cards.view"}
    assert home(w, "maria", query_string={"lang": "en"}).json["sections"][0]["title"] == "Cards"
    by_header = home(w, "ua", headers={"Accept-Language": "es-MX,es;q=0.9"})
    assert by_header.json["language"] == "es"
    assert home(w, "ua", query_string={"lang": "fr"}).status_code == 422


def test_only_the_user_or_the_help_desk_see_a_home_page(company_a):
    w = company_a
    assert home(w, "ua", viewer="pa").status_code == 404
    assert keys(home(w, "ua", viewer="hd-1")) == keys(home(w, "ua"))


def test_an_inactive_user_has_an_empty_page(company_a):
    w = company_a
    w.deliver("identity.user.disabled", {"user_id": "ua", "reason": "fraud"})
    assert keys(home(w, "ua", viewer="hd-1")) == []

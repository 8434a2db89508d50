"""The tracking HTTP API: registration by internal apps, look-up access rules, the
overview (filters, counts, stable cursor pages), CSV export, OpenAPI and errors."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, func, select

from services.common import tracking_numbers
from services.common.db import DriverStatement
from services.common.events import Envelope
from services.tracking.handlers import registry
from services.tracking.models import IdempotencyKey, OutboxEvent, Transaction

PROBLEM = "application/problem+json"


@pytest.fixture
def app(make_app, token_issuer, permissions_answers):
    return make_app("tracking", **permissions_answers.SETTINGS)


@pytest.fixture
def powers(permissions_answers):
    """Permissions' answers: admin-1 and admin-2 administer c-1 and c-2 (company-wide
    tracking); hd-1 is the help desk."""
    permissions_answers.grant("admin-1", "transactions.track_company", "c-1")
    permissions_answers.grant("admin-2", "transactions.track_company", "c-2")
    permissions_answers.grant("admin", "transactions.track_company", "c-1")
    permissions_answers.grant("hd-1", "platform.helpdesk")
    return permissions_answers


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def tokens(token_issuer):
    class Tokens:
        def app(self, client_id="cards-app", scope="tracking.write tracking.read"):
            return _bearer(token_issuer.issue(sub=client_id, client_id=client_id,
                                              aud="tracking", scope=scope))

        def user(self, sub, *, company_id=None, entitlements=(), scope="openid tracking.read"):
            extra = {"entitlements": list(entitlements)}
            if company_id is not None:
                extra["company_id"] = company_id
            return _bearer(token_issuer.issue(sub=sub, aud="tracking", scope=scope, **extra))

    return Tokens()


def _bearer(token):
    return {"Authorization": f"Bearer {token}"}


def register(client, headers, **overrides):
    body = {"type": "card_cancellation", "owner_user_id": "u-1", "company_id": "c-1",
            "title_en": "Card cancellation", "title_es": "Cancelación de tarjeta"}
    body.update(overrides)
    return client.post("/v1/transactions", json=body, headers=headers)


def count(app, model):
    with app.extensions["portico"].db.read() as session:
        return session.scalar(select(func.count()).select_from(model))


# -- registration by internal apps --------------------------------------------------

def test_app_registers_a_transaction_with_a_generated_number(client, tokens, app):
    response = register(client, tokens.app())
    assert response.status_code == 201, response.json
    body = response.json
    assert tracking_numbers.is_valid(body["tracking_number"])
    assert response.headers["Location"].endswith(body["tracking_number"])
    assert (body["status"], body["source"], body["title"]) == (
        "submitted", "app", "Card cancellation")
    assert [h["status"] for h in body["history"]] == ["submitted"]
    assert count(app, OutboxEvent) == 1


def test_registration_needs_the_write_scope_and_a_token(client, tokens):
    assert register(client, {}).status_code == 401
    forbidden = register(client, tokens.app(scope="tracking.read"))
    assert forbidden.status_code == 403
    assert forbidden.mimetype == PROBLEM


def test_registration_validates_fields_as_a_problem(client, tokens):
    response = register(client, tokens.app(), status="nonsense", tracking_number="PTC-0000-0000-1",
                        title_en="")
    assert response.status_code == 422
    assert response.mimetype == PROBLEM
    errors = response.json["errors"]
    assert set(errors) == {"status", "tracking_number", "title_en"}
    assert errors["tracking_number"] == ["not a valid tracking number"]


def test_given_tracking_number_is_normalised_and_unique(client, tokens):
    number = tracking_numbers.generate()
    first = register(client, tokens.app(), tracking_number=number.lower().replace("-", " "))
    assert first.status_code == 201
    assert first.json["tracking_number"] == number
    again = register(client, tokens.app(), tracking_number=number)
    assert again.status_code == 409
    assert again.json["type"].endswith("/transaction-exists")


def test_idempotency_key_replays_the_same_answer(client, tokens, app):
    headers = {**tokens.app(), "Idempotency-Key": "k-123"}
    first = register(client, headers)
    second = register(client, headers)
    assert first.status_code == second.status_code == 201
    assert first.json == second.json
    assert count(app, Transaction) == 1
    assert count(app, IdempotencyKey) == 1
    different = register(client, headers, title_en="Something else")
    assert different.status_code == 422
    assert different.json["type"].endswith("/idempotency-key-reused")
    # The same key from another client is that client's own key.
    other = register(client, {**tokens.app("other-app"), "Idempotency-Key": "k-123"})
    assert other.status_code == 201
    assert other.json["tracking_number"] != first.json["tracking_number"]


def test_app_moves_its_transaction_and_illegal_moves_are_409(client, tokens, app):
    number = register(client, tokens.app()).json["tracking_number"]
    headers = {**tokens.app(), "Idempotency-Key": "move-1"}
    moved = client.post(f"/v1/transactions/{number}/status",
                        json={"status": "approved", "comment": "checked"}, headers=headers)
    assert moved.status_code == 200, moved.json
    assert [(h["status"], h["comment"]) for h in moved.json["history"]] == [
        ("submitted", None), ("approved", "checked")]
    replay = client.post(f"/v1/transactions/{number}/status",
                         json={"status": "approved", "comment": "checked"}, headers=headers)
    assert replay.status_code == 200
    assert replay.json == moved.json
    back = client.post(f"/v1/transactions/{number}/status", json={"status": "in_review"},
                       headers=tokens.app())
    assert back.status_code == 409
    assert back.mimetype == PROBLEM
    assert back.json["type"].endswith("/illegal-transition")
    assert (back.json["current_status"], back.json["requested_status"]) == (
        "approved", "in_review")
    assert count(app, OutboxEvent) == 2


def test_an_app_cannot_move_another_apps_transaction(client, tokens):
    number = register(client, tokens.app("app-a")).json["tracking_number"]
    response = client.post(f"/v1/transactions/{number}/status", json={"status": "cancelled"},
                           headers=tokens.app("app-b"))
    assert response.status_code == 404


# -- look-up ---------------------------------------------------------------------------

@pytest.fixture
def number(client, tokens):
    return register(client, tokens.app(), owner_user_id="u-1",
                    company_id="c-1").json["tracking_number"]


@pytest.mark.parametrize("who,expected", [
    ("owner", 200), ("company_admin", 200), ("helpdesk", 200),
    ("other_company_admin", 404), ("same_company_without_entitlement", 404),
    ("stranger", 404),
])
def test_look_up_access_rules(client, tokens, number, who, expected, powers):
    headers = {
        "owner": tokens.user("u-1", company_id="c-1"),
        "company_admin": tokens.user("admin-1", company_id="c-1"),
        "helpdesk": tokens.user("hd-1"),
        "other_company_admin": tokens.user("admin-2", company_id="c-2"),
        # What the token claims is not what permissions says (issue 24, item 3): an
        # ordinary user holding transactions.track, even claiming helpdesk.act.
        "same_company_without_entitlement": tokens.user(
            "u-2", company_id="c-1",
            entitlements=["transactions.track", "transactions.track_company", "helpdesk.act"]),
        "stranger": tokens.user("u-3"),
    }[who]
    response = client.get(f"/v1/transactions/{number}", headers=headers)
    assert response.status_code == expected, response.json
    if expected == 404:
        assert response.mimetype == PROBLEM
        unknown = client.get(f"/v1/transactions/{tracking_numbers.generate()}", headers=headers)
        assert unknown.json["detail"] == response.json["detail"]  # no existence leak
    else:
        assert response.json["tracking_number"] == number


def test_look_up_needs_a_token_and_the_read_scope(client, tokens, number):
    unauthenticated = client.get(f"/v1/transactions/{number}")
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["WWW-Authenticate"].startswith("Bearer")
    no_scope = client.get(f"/v1/transactions/{number}",
                          headers=tokens.user("u-1", scope="openid profile"))
    assert no_scope.status_code == 403


def test_mistyped_number_is_not_valid_rather_than_not_found(client, tokens, number):
    body = number[:-1]
    wrong_check = next(body + c for c in "0123456789ABC" if body + c != number)
    response = client.get(f"/v1/transactions/{wrong_check}", headers=tokens.user("u-1"))
    assert response.status_code == 400
    assert response.mimetype == PROBLEM
    assert response.json["detail"] == "not a valid tracking number"
    found = client.get(f"/v1/transactions/{number.lower()}", headers=tokens.user("u-1"))
    assert found.status_code == 200


def test_titles_follow_the_callers_language(client, tokens, number):
    headers = tokens.user("u-1")
    spanish = client.get(f"/v1/transactions/{number}",
                         headers={**headers, "Accept-Language": "es-MX,es;q=0.9"})
    assert spanish.json["title"] == "Cancelación de tarjeta"
    forced = client.get(f"/v1/transactions/{number}?lang=en",
                        headers={**headers, "Accept-Language": "es"})
    assert forced.json["title"] == "Card cancellation"


def test_event_built_transaction_is_visible_to_its_owner(client, tokens, app):
    number = tracking_numbers.generate()
    with app.extensions["portico"].db.transaction() as session:
        registry(session, Envelope.new("permissions.request.created", "permissions",
                                       {"requester_id": "u-7", "entitlements": ["cards.cancel"]},
                                       subject="u-8", company_id="c-1", tracking_number=number))
    response = client.get(f"/v1/transactions/{number}", headers=tokens.user("u-7"))
    assert response.status_code == 200
    assert response.json["title"] == "Entitlement request: cards.cancel"
    assert response.json["history"][0]["applied"] is True


def test_look_up_is_one_statement_with_the_history_in_order(client, tokens, app,
                                                             monkeypatch):
    """The hot read path: the transaction and its whole history in a single SQL statement
    (no separate history load, no BEGIN/ROLLBACK on PostgreSQL), oldest entry first."""
    number = register(client, tokens.app(), owner_user_id="u-1").json["tracking_number"]
    for status in ("in_review", "approved"):
        moved = client.post(f"/v1/transactions/{number}/status", json={"status": status},
                            headers=tokens.app())
        assert moved.status_code == 200, moved.json
    headers = tokens.user("u-1")
    client.get(f"/v1/transactions/{number}", headers=headers)  # warm the pool
    statements: list[str] = []
    db = app.extensions["portico"].db
    engines = [db.engine] if db.is_sqlite else [db.engine, db.autocommit_engine]

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    def begin(conn):
        statements.append("BEGIN")

    # On PostgreSQL the look-up runs as a DriverStatement, below SQLAlchemy's events.
    run = DriverStatement._run

    def run_recorded(self, database, params, fetch):
        statements.append(str(self.statement.compile(dialect=database.engine.dialect)))
        return run(self, database, params, fetch)

    monkeypatch.setattr(DriverStatement, "_run", run_recorded)
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
        event.listen(engine, "begin", begin)
    try:
        response = client.get(f"/v1/transactions/{number}", headers=headers)
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)
            event.remove(engine, "begin", begin)
    assert response.status_code == 200
    assert [h["status"] for h in response.json["history"]] == [
        "submitted", "in_review", "approved"]
    assert all(h["applied"] is True for h in response.json["history"])
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 1, statements
    if not db.is_sqlite:  # and nothing else: no BEGIN, no ROLLBACK
        assert statements == selects


# -- overview ----------------------------------------------------------------------------

def seed(app, rows):
    """Insert transactions directly: (owner, company, status, title, minutes after T0)."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with app.extensions["portico"].db.transaction() as session:
        for owner, company, status, title, minute in rows:
            at = t0 + timedelta(minutes=minute)
            session.add(Transaction(
                tracking_number=tracking_numbers.generate(), type="card_cancellation",
                owner_user_id=owner, company_id=company, title_en=title, title_es=title + " (es)",
                status=status, created_at=at, updated_at=at, last_event_at=at, source="app"))


def test_overview_lists_the_callers_own_with_counts_and_filters(client, tokens, app):
    seed(app, [("u-1", "c-1", "submitted", "Card A", 1), ("u-1", "c-1", "approved", "Card B", 2),
               ("u-1", "c-1", "completed", "Report", 3), ("u-2", "c-1", "submitted", "Other", 4)])
    headers = tokens.user("u-1", company_id="c-1")
    everything = client.get("/v1/transactions", headers=headers).json
    assert [i["title"] for i in everything["items"]] == ["Report", "Card B", "Card A"]
    assert everything["counts"]["submitted"] == 1
    assert everything["next_cursor"] is None
    some = client.get("/v1/transactions?status=submitted&status=approved&sort=asc",
                      headers=headers).json
    assert [i["title"] for i in some["items"]] == ["Card A", "Card B"]
    assert some["counts"]["completed"] == 1  # counts ignore only the status filter
    text = client.get("/v1/transactions?q=card", headers=headers).json
    assert {i["title"] for i in text["items"]} == {"Card A", "Card B"}
    dated = client.get("/v1/transactions", headers=headers, query_string={
        "created_from": "2026-01-01T00:02:00Z", "created_to": "2026-01-01T00:03:00+00:00"}).json
    assert [i["title"] for i in dated["items"]] == ["Card B"]
    assert client.get("/v1/transactions?q=100%25_", headers=headers).json["items"] == []


def test_company_scope_is_for_company_administrators(client, tokens, app, powers):
    seed(app, [("u-1", "c-1", "submitted", "A", 1), ("u-2", "c-1", "submitted", "B", 2),
               ("u-3", "c-2", "submitted", "C", 3)])
    admin = tokens.user("admin", company_id="c-1")
    listed = client.get("/v1/transactions?scope=company", headers=admin).json
    assert {i["title"] for i in listed["items"]} == {"A", "B"}
    # An ordinary employee holding transactions.track sees only their own (issue 24, item 3).
    employee = tokens.user("u-1", company_id="c-1", entitlements=["transactions.track"])
    refused = client.get("/v1/transactions?scope=company", headers=employee)
    assert refused.status_code == 403
    assert refused.mimetype == PROBLEM
    own = client.get("/v1/transactions", headers=employee).json
    assert [i["title"] for i in own["items"]] == ["A"]
    # The company named in the token is only what is asked about: admin of c-1 claiming c-2.
    assert client.get("/v1/transactions?scope=company",
                      headers=tokens.user("admin", company_id="c-2")).status_code == 403


def test_a_revoked_power_is_refused_on_the_next_request(client, tokens, number, powers):
    helpdesk = tokens.user("hd-1")
    assert client.get(f"/v1/transactions/{number}", headers=helpdesk).status_code == 200
    powers.revoke("hd-1", "platform.helpdesk")
    assert client.get(f"/v1/transactions/{number}", headers=helpdesk).status_code == 404
    admin = tokens.user("admin", company_id="c-1")
    assert client.get("/v1/transactions?scope=company", headers=admin).status_code == 200
    powers.revoke("admin", "transactions.track_company", "c-1")
    assert client.get("/v1/transactions?scope=company", headers=admin).status_code == 403


def test_an_owner_reading_their_own_asks_permissions_nothing(client, tokens, number, powers):
    assert client.get(f"/v1/transactions/{number}",
                      headers=tokens.user("u-1")).status_code == 200
    assert client.get("/v1/transactions", headers=tokens.user("u-1")).status_code == 200
    assert powers.asked == []


def test_permissions_down_refuses_privileged_views_and_keeps_owners_served(
        client, tokens, number, powers):
    powers.down = True
    answer = client.get(f"/v1/transactions/{number}", headers=tokens.user("hd-1"))
    assert answer.status_code == 503 and answer.mimetype == PROBLEM
    assert answer.headers["Retry-After"]
    assert client.get(f"/v1/transactions/{number}",
                      headers=tokens.user("u-1")).status_code == 200


def test_overview_validates_its_query_as_a_problem(client, tokens):
    response = client.get("/v1/transactions?limit=500&status=bogus&sort=sideways",
                          headers=tokens.user("u-1"))
    assert response.status_code == 422
    assert response.mimetype == PROBLEM
    assert {"limit", "status.0", "sort"} <= set(response.json["errors"])
    bad_cursor = client.get("/v1/transactions?cursor=nope", headers=tokens.user("u-1"))
    assert bad_cursor.status_code == 422
    assert "cursor" in bad_cursor.json["errors"]


def test_pages_stay_stable_while_new_rows_arrive(client, tokens, app):
    seed(app, [("u-1", "c-1", "submitted", f"T{i:02d}", i) for i in range(25)]
         + [("u-1", "c-1", "submitted", f"Same{i}", 100) for i in range(5)])
    headers = tokens.user("u-1")
    for sort in ("desc", "asc"):
        seen: list[str] = []
        cursor = None
        page_no = 0
        while True:
            query = {"limit": 7, "sort": sort, **({"cursor": cursor} if cursor else {})}
            page = client.get("/v1/transactions", headers=headers, query_string=query).json
            seen.extend(i["tracking_number"] for i in page["items"])
            if page_no == 0:  # newer rows arrive after the first page was read
                seed(app, [("u-1", "c-1", "submitted", f"New{sort}{i}", 1000 + i)
                           for i in range(4)])
            page_no += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)), "a row was listed twice"
        titles = set()
        with app.extensions["portico"].db.read() as session:
            by_number = {n: t for n, t in session.execute(select(Transaction.tracking_number,
                                                    Transaction.title_en))}
        titles = {by_number[n] for n in seen}
        assert {f"T{i:02d}" for i in range(25)} | {f"Same{i}" for i in range(5)} <= titles


# -- CSV -----------------------------------------------------------------------------------

def test_csv_export_with_filters_and_formula_escaping(client, tokens, app):
    seed(app, [("u-1", "c-1", "submitted", "=HYPERLINK(\"x\")", 1),
               ("u-1", "c-1", "completed", "Plain, with comma", 2),
               ("u-2", "c-1", "submitted", "not mine", 3)])
    headers = tokens.user("u-1")
    response = client.get("/v1/transactions.csv?status=submitted", headers=headers)
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["tracking_number", "type", "status", "title", "created_at", "updated_at"]
    assert [r[3] for r in rows[1:]] == ["'=HYPERLINK(\"x\")"]
    negotiated = client.get("/v1/transactions", headers={**headers, "Accept": "text/csv"})
    assert negotiated.mimetype == "text/csv"
    assert len(list(csv.reader(io.StringIO(negotiated.get_data(as_text=True))))) == 3
    assert client.get("/v1/transactions.csv").status_code == 401


# -- OpenAPI and errors ----------------------------------------------------------------------

def test_openapi_document_describes_the_api(client):
    spec = client.get("/openapi.json").json
    assert spec["openapi"] == "3.0.3"
    assert {"/v1/transactions", "/v1/transactions/{tracking_number}",
            "/v1/transactions/{tracking_number}/status", "/v1/transactions.csv"} <= set(
        spec["paths"])
    assert "bearerAuth" in spec["components"]["securitySchemes"]
    assert "TransactionCreate" in spec["components"]["schemas"]


def test_framework_errors_stay_problem_json(client, tokens):
    missing = client.get("/v1/nothing-here")
    assert (missing.status_code, missing.mimetype) == (404, PROBLEM)
    wrong_method = client.delete("/v1/transactions")
    assert (wrong_method.status_code, wrong_method.mimetype) == (405, PROBLEM)
    not_json = client.post("/v1/transactions", data="{", headers={
        **tokens.app(), "Content-Type": "application/json"})
    assert not_json.status_code in (400, 422)
    assert not_json.mimetype == PROBLEM

"""``POST /v1/check`` and ``/v1/check/batch`` under gunicorn with 10,000 users × 10 grants
in the read model (issue 6, "Performance")."""

from __future__ import annotations

import hashlib
import json
import random
import time
import uuid
from datetime import timedelta

import requests

from bench.fixtures import Backends, TokenIssuer, profile_calls
from bench.harness import (
    REPEATS,
    TABLE_HEAD,
    Call,
    Server,
    bare_flask,
    load_average,
    run_load,
    runs_text,
    scaled_to_issue_machine,
    verdict,
)

TITLE = "Permissions checks"
SECONDS = 5
WORKERS = 2
THREADS = 2  # as deploy/k8s/base/permissions.yaml runs it (GUNICORN_THREADS)
USERS = 10_000
GRANTS_PER_USER = 10
COMPANIES = 200
ACCOUNTS_PER_COMPANY = 5
BATCH = 50
# 16 connections each waiting 9 ms after an answer: at most ~1,800 checks/s with instant
# answers; the row reports the rate reached.
PACED_THINK_MS = 9
ACTIONS = ["cards.view", "cards.cancel", "cards.request", "transactions.track", "reports.view",
           "reports.export", "contacts.update", "users.view", "users.manage",
           "entitlements.request", "entitlements.approve"]
SCOPABLE = {"cards.view", "cards.cancel", "cards.request", "reports.view", "reports.export"}


def _user_id(i: int) -> str:
    return f"bench-u-{i:05d}"


def _accounts(company: int) -> list[dict[str, str]]:
    found = []
    for j in range(ACCOUNTS_PER_COMPANY):
        fp = hashlib.sha256(f"bench-{company}-{j}".encode()).hexdigest()
        found.append({"last5": f"{(company * 7 + j * 13) % 100000:05d}", "fingerprint": fp})
    return found


def load_read_model(database_url: str) -> None:
    """Companies, their accounts, users and grants straight into the tables (SQLAlchemy
    core, batched): the state identity's events and approvals would have built."""
    from services.common.db import Database
    from services.common.events import utcnow
    from services.permissions.models import Company, CompanyAccount, Grant, User

    rng = random.Random(6)
    now = utcnow()
    companies = [{"id": f"bench-co-{c:03d}", "name": f"Company {c}", "principal_user_id": None,
                  "allowed_entitlements": None} for c in range(COMPANIES)]
    accounts = [{"company_id": f"bench-co-{c:03d}", **a}
                for c in range(COMPANIES) for a in _accounts(c)]
    users, grants = [], []
    for i in range(USERS):
        company = i % COMPANIES
        users.append({"id": _user_id(i), "company_id": f"bench-co-{company:03d}",
                      "email": f"u{i}@example.com", "given_name": "Bench", "family_name": str(i),
                      "preferred_language": "en", "status": "active" if i % 50 else "inactive",
                      "updated_at": now})
        held = rng.sample(ACTIONS, GRANTS_PER_USER)
        for key in held:
            limited = key in SCOPABLE and rng.random() < 0.5
            grants.append({
                "id": str(uuid.uuid4()), "user_id": _user_id(i),
                "company_id": f"bench-co-{company:03d}", "entitlement_key": key,
                "accounts": rng.sample(_accounts(company), 2) if limited else None,
                "source": "operator", "created_at": now,
                "expires_at": now + timedelta(days=30) if rng.random() < 0.1 else None,
                "revoked_at": None})
    db = Database(database_url)
    with db.transaction() as session:
        for table, rows in ((Company, companies), (CompanyAccount, accounts), (User, users),
                            (Grant, grants)):
            for start in range(0, len(rows), 5000):
                session.execute(table.__table__.insert(), rows[start:start + 5000])
    db.dispose()


def _random_check(rng: random.Random) -> dict:
    i = rng.randrange(USERS + USERS // 100)  # ~1% unknown subjects
    check: dict = {"subject": _user_id(i), "action": rng.choice(ACTIONS)}
    if check["action"] in SCOPABLE and rng.random() < 0.5:
        check["resource"] = {"account_last5": rng.choice(_accounts(i % COMPANIES))["last5"]}
    return check


def run() -> str:
    started = time.monotonic()
    load_before = load_average()
    notes: list[str] = []
    rows: list[str] = []
    rng = random.Random(42)
    with Backends() as backends, TokenIssuer() as issuer:
        url = backends.database("permissions")
        load_started = time.monotonic()
        load_read_model(url)
        load_took = time.monotonic() - load_started
        env = backends.service_env(url, **issuer.env)
        token = issuer.issue(sub="bench-portal", aud="permissions", scope="permissions.check")
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        singles = [Call("/v1/check", "POST", json.dumps(_random_check(rng)), headers)
                   for _ in range(20_000)]
        batches = [Call("/v1/check/batch", "POST",
                        json.dumps({"checks": [_random_check(rng) for _ in range(BATCH)]}),
                        headers) for _ in range(1_000)]
        with Server("permissions", env, workers=WORKERS, threads=THREADS) as server:
            _warm(server, headers)
            single = run_load("POST /v1/check (random subject among 10,000)", server,
                              "/v1/check", calls=singles, seconds=SECONDS, repeats=REPEATS)
            rows.append(single.row(verdict(single, per_cpu=1500, p99_ms=10)))
            # p99 at a load near the per-CPU target, not at saturation: each connection
            # waits PACED_THINK_MS after an answer (at saturation on these 2 shared cores
            # the p99 is queueing, as the bare-Flask yardstick row shows).
            paced = run_load(f"POST /v1/check paced ({PACED_THINK_MS} ms think time per "
                             "connection, not saturating)", server, "/v1/check", calls=singles,
                             seconds=SECONDS, repeats=REPEATS, think_ms=PACED_THINK_MS)
            rows.append(paced.row("p99 at the rate measured (req/s column); beyond the issue"))
            batch = run_load(f"POST /v1/check/batch ({BATCH} checks per call)", server,
                             "/v1/check/batch", calls=batches, seconds=SECONDS, repeats=REPEATS)
            rows.append(batch.row(verdict(batch, per_cpu=20_000, factor=BATCH,
                                          unit="decisions")))
            notes.append(f"Batch: {batch.requests * BATCH:,} decisions, "
                         f"{batch.per_cpu_second * BATCH:,.0f} decisions per server-CPU-second, "
                         f"{batch.rps * BATCH:,.0f} decisions/s.")
        yardsticks = []
        for name, think_ms, target in (
                ("reference: bare Flask JSON endpoint (no token, no Redis)", 0,
                 "yardstick (the issue: ~1,800/CPU-s); same gunicorn and wrk"),
                (f"reference: bare Flask, paced ({PACED_THINK_MS} ms think time)",
                 PACED_THINK_MS, "yardstick for the paced row")):
            bare = bare_flask(name, WORKERS, THREADS, singles[0].body, seconds=SECONDS,
                              repeats=REPEATS, think_ms=think_ms)
            yardsticks.append(bare)
            rows.append(bare.row(target))
        notes.append(scaled_to_issue_machine(yardsticks[0], [
            ("check", single.per_cpu_second, 1500),
            ("batch decisions", batch.per_cpu_second * BATCH, 20_000)]))
        if "missed" in rows[0]:
            notes.append(_profile(env, singles))
    setup = (f"permissions under gunicorn (gthread, {WORKERS} workers × {THREADS} threads), "
             f"{backends.describe}; read model loaded with {USERS:,} users × {GRANTS_PER_USER} "
             f"grants ({COMPANIES} companies, {ACCOUNTS_PER_COMPANY} accounts each, half the "
             f"scopable grants limited to 2 accounts, 2% inactive users; bulk insert "
             f"{load_took:.1f} s). Caller: an ES256 access token (scope `permissions.check`) "
             "from a loopback JWKS. Each request is drawn at random from 20,000 prepared checks "
             "(random subject, ~1% unknown, random action, half of the scopable ones naming an "
             "account) by a wrk Lua script; the snapshot caches were warmed with every user "
             "first (steady state). No rate limits on these endpoints. wrk 2 threads × 16 "
             f"connections, {runs_text(SECONDS)}; CPU is the gunicorn processes' only (Redis, "
             "PostgreSQL not counted). The two reference rows are the issue's yardstick, measured the same "
             "way on the same day: a bare Flask app (`bench/reference_app.py`) that parses the "
             "check's JSON body and answers JSON. The paced rows are not in the issue: each "
             f"connection waits {PACED_THINK_MS} ms after an answer, to read the p99 below "
             "saturation.")
    notes.append(f"Whole module: {time.monotonic() - started:.0f} s; 1-minute load average "
                 f"{load_before} at the start, {load_average()} at the end (2 cores: above ~2 "
                 "other work shared the machine).")
    return "\n".join([setup, "", TABLE_HEAD, *rows, "", *(f"* {n}" for n in notes)])


def _warm(server: Server, headers: dict[str, str]) -> None:
    """Every user's snapshot into both workers' caches (connections land on either)."""
    for _ in range(3):
        for start in range(0, USERS, 100):
            body = {"checks": [{"subject": _user_id(i), "action": "cards.view"}
                               for i in range(start, min(start + 100, USERS))]}
            requests.post(server.url + "/v1/check/batch", json=body, headers=headers,
                          timeout=10)


def _profile(env: dict[str, str], calls: list[Call]) -> str:
    import logging

    from services.permissions.app import create_app

    app = create_app({"database_url": env["DATABASE_URL"], "redis_url": env["REDIS_URL"],
                      "redis_namespace": env["REDIS_NAMESPACE"], "issuer": env["OIDC_ISSUER"],
                      "jwks_url": env["JWKS_URL"], "log_level": "WARNING"})
    logging.getLogger().setLevel(logging.WARNING)
    return "Missed target `check`: profile\n" + profile_calls(app, calls[:1000], count=500, warmup=1000)

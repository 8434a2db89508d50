"""Tracking (issue 7, "Performance"): look-up and overview with 1,000,000 transactions
stored, and ingestion of identity events by the real consumer into PostgreSQL.

``python -m bench.tracking_bench consume`` is one consumer process of the ingestion row
(started by :func:`run`, configured through the environment).
"""

from __future__ import annotations

import io
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from bench.fixtures import Backends, TokenIssuer, profile_calls
from bench.harness import (
    REPEATS,
    ROOT,
    TABLE_HEAD,
    Call,
    Result,
    Server,
    cpu_seconds,
    load_average,
    peak_rss_mib,
    run_load,
    runs_text,
    verdict,
)

TITLE = "Tracking"
SECONDS = 5
WORKERS = 2
THREADS = 4
ROWS_POSTGRES = 1_000_000
ROWS_SQLITE = 100_000
LATENCY_CONNECTIONS = 4
OWNERS = 50_000          # ~20 transactions each
COMPANIES = 1_000        # ~1,000 transactions each
EVENTS = 20_000          # ingestion: 10,000 enrollments × (submitted, verified)
CONSUMERS = 2
CONSUMER_BATCH = 500     # entries per XREADGROUP, handled in one transaction
INGEST_SECONDS = 20
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXY"
TYPES = [("enrollment", "Enrollment", "Inscripción"),
         ("password_reset", "Password reset", "Restablecimiento de contraseña"),
         ("contact_change", "Contact details change", "Cambio de datos de contacto"),
         ("entitlement_request", "Entitlement request: cards.cancel",
          "Solicitud de permisos: cards.cancel"),
         ("card_cancellation", "Card cancellation ••1234", "Cancelación de tarjeta ••1234")]
STATUSES = ["completed", "completed", "completed", "approved", "in_review", "submitted",
            "rejected", "expired", "cancelled", "failed"]


def tracking_number(i: int) -> str:
    """A valid, unique, random-looking tracking number for row ``i`` (a bijection on
    31**8 scrambles the order), with the service's check symbol."""
    from services.common.tracking_numbers import _check_symbol, format_number

    n = (i * 2_654_435_761 + 12_345) % 31 ** 8
    body = ""
    for _ in range(8):
        n, digit = divmod(n, 31)
        body += ALPHABET[digit]
    return format_number(body + _check_symbol(body))


def owner(i: int) -> str:
    return f"bench-owner-{i % OWNERS:05d}"


def company(i: int) -> str:
    return f"bench-co-{(i // 7) % COMPANIES:04d}"


EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def _row(i: int) -> tuple:
    type_, en, es = TYPES[i % len(TYPES)]
    created = EPOCH - timedelta(seconds=i * 60)  # two years of history, one a minute
    status = STATUSES[(i * 7) % len(STATUSES)]
    return (tracking_number(i), type_, owner(i), company(i), en, es, status, created,
            created + timedelta(hours=2), f"corr-{i}", created + timedelta(hours=2), "bench",
            None)


COLUMNS = ("tracking_number", "type", "owner_user_id", "company_id", "title_en", "title_es",
           "status", "created_at", "updated_at", "correlation_id", "last_event_at", "source",
           "client_id")


def load_transactions(backends: Backends, url: str, rows: int) -> None:
    """``rows`` transactions, each with its history (one or two entries): COPY on
    PostgreSQL, batched inserts on SQLite; then ANALYZE."""
    from services.common.db import Database
    from services.tracking.models import Transaction

    db = Database(url)
    indexes = _drop_secondary_indexes(db) if backends.postgres else []
    if backends.postgres:
        raw = db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            with cursor.copy(f"COPY transactions ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                buffer = io.StringIO()
                for i in range(rows):
                    values = _row(i)
                    buffer.write("\t".join(r"\N" if v is None else
                                           (v.isoformat() if isinstance(v, datetime) else str(v))
                                           for v in values) + "\n")
                    if i % 50_000 == 49_999:
                        copy.write(buffer.getvalue())
                        buffer = io.StringIO()
                copy.write(buffer.getvalue())
            raw.commit()
        finally:
            raw.close()
    else:
        with db.transaction() as session:
            for start in range(0, rows, 10_000):
                session.execute(Transaction.__table__.insert(), [
                    dict(zip(COLUMNS, _row(i), strict=True))
                    for i in range(start, min(start + 10_000, rows))])
    with db.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO status_history (transaction_id, status, at, actor, applied, recorded_at) "
            "SELECT id, 'submitted', created_at, 'service:bench', true, created_at "
            "FROM transactions"))
        conn.execute(text(
            "INSERT INTO status_history (transaction_id, status, at, actor, applied, recorded_at) "
            "SELECT id, status, last_event_at, 'service:bench', true, last_event_at "
            "FROM transactions WHERE status <> 'submitted'"))
    with db.engine.begin() as conn:
        if backends.postgres:
            conn.execute(text("SET maintenance_work_mem = '256MB'"))
        for definition in indexes:
            conn.execute(text(definition))
    with db.engine.connect() as conn:
        if backends.postgres:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
        else:
            conn.execute(text("ANALYZE"))
            conn.commit()
    db.dispose()


def _drop_secondary_indexes(db) -> list[str]:
    """Drop the tables' plain indexes (not keys or unique constraints) for the bulk load;
    their exact definitions, to create them again afterwards (faster than maintaining
    them row by row, same result)."""
    query = text(
        "SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def "
        "FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid "
        "WHERE t.relname IN ('transactions', 'status_history') AND NOT i.indisprimary "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)")
    with db.engine.begin() as conn:
        found = conn.execute(query).all()
        for name, _ in found:
            conn.execute(text(f"DROP INDEX {name}"))
    return [definition for _, definition in found]


def run() -> str:
    started = time.monotonic()
    load_before = load_average()
    notes: list[str] = []
    rows_out: list[str] = []
    rng = random.Random(7)
    with Backends() as backends, TokenIssuer() as issuer:
        count = ROWS_POSTGRES if backends.postgres else ROWS_SQLITE
        if not backends.postgres:
            notes.append(f"SQLite: {ROWS_SQLITE:,} transactions instead of 1,000,000.")
        url = backends.database("tracking")
        load_started = time.monotonic()
        load_transactions(backends, url, count)
        load_took = time.monotonic() - load_started
        env = backends.service_env(url, **issuer.env)

        def token(sub: str, **claims) -> str:
            return issuer.issue(sub=sub, aud="tracking", scope="openid profile tracking.read",
                                **claims)

        owner_tokens: dict[str, str] = {}

        def owner_headers(who: str) -> dict[str, str]:
            if who not in owner_tokens:
                owner_tokens[who] = token(who)
            return {"Authorization": "Bearer " + owner_tokens[who], "Accept-Language": "en"}

        sample = [rng.randrange(count) for _ in range(10_000)]
        lookups = [Call(f"/v1/transactions/{tracking_number(i)}", headers=owner_headers(owner(i)))
                   for i in sample]
        mine = [Call("/v1/transactions", headers=owner_headers(owner(i))) for i in sample[:3000]]
        admins = []
        for c in rng.sample(range(COMPANIES), 200):
            admin = token(f"bench-admin-{c}", company_id=f"bench-co-{c:04d}",
                          entitlements=["transactions.track"])
            admins.append(Call("/v1/transactions?scope=company",
                               headers={"Authorization": "Bearer " + admin}))
        with Server("tracking", env, workers=WORKERS, threads=THREADS) as server:
            loads = [
                ("look-up", "GET /v1/transactions/<tn> (owner, random of all)", lookups, 10),
                ("mine", "GET /v1/transactions first page, scope=mine (~20 per owner)", mine, 30),
                ("company", "GET /v1/transactions first page, scope=company (~1,000 per company)",
                 admins, 30),
            ]
            missed: dict[str, list[Call]] = {}
            for key, name, calls, p99 in loads:
                # Issue #7 names no concurrency for its latency targets (unlike #3 and #6,
                # which say 16 connections), so each is judged at a moderate, stated load
                # (LATENCY_CONNECTIONS) and the 16-connection row shows saturation.
                for conns in (LATENCY_CONNECTIONS, 16):
                    result = run_load(name, server, calls[0].path, calls=calls,
                                      seconds=SECONDS, connections=conns,
                                      repeats=REPEATS)
                    judged = verdict(result, p99_ms=p99)
                    if conns != LATENCY_CONNECTIONS:
                        judged = judged.replace(" ms", " ms at 16 conns (beyond the issue)")
                    rows_out.append(result.row(judged))
                    if conns == LATENCY_CONNECTIONS and "missed" in judged:
                        missed[key] = calls
        ingest, ingest_note = ingest_events(backends, url)
        rows_out.append(ingest.row(ingest_note))
        if missed:
            notes.append(_profile(env, *next(iter(missed.items()))))
    setup = (f"tracking under gunicorn (gthread, {WORKERS} workers × {THREADS} threads), "
             f"{backends.describe}; {count:,} transactions with {count * 19 // 10:,}-odd history "
             f"rows bulk-loaded (COPY, insert-select, indexes rebuilt; {load_took:.0f} s incl. VACUUM ANALYZE), "
             f"{OWNERS:,} owners (~{count // OWNERS} each), {COMPANIES:,} companies "
             f"(~{count // COMPANIES:,} each), created one a minute over ~2 years. Callers: ES256 "
             "access tokens from a loopback JWKS, one per owner/administrator, drawn at random by "
             "a wrk Lua script (10,000 look-ups of random numbers by their owners; 3,000 owners; "
             f"200 company administrators). No rate limits on these endpoints. wrk 2 threads, "
             f"each endpoint at {LATENCY_CONNECTIONS} connections (where its p99 target is "
             "judged: the issue names no concurrency) and at 16 (saturation: the 2 cores are "
             f"shared by wrk, gunicorn and PostgreSQL), {runs_text(SECONDS)}; CPU is the gunicorn processes' only. "
             f"Ingestion: {EVENTS:,} events (10,000 enrollments × submitted + verified) published "
             f"to the identity stream, then consumed by {CONSUMERS} processes running "
             "`services.common.events.Consumer` with tracking's handler registry (group "
             f"`tracking`; batches of up to {CONSUMER_BATCH} entries, one transaction and one "
             "`ingest_events` call each), the row's figures being events, not HTTP requests (latency columns "
             "not applicable).")
    notes.append(f"Whole module: {time.monotonic() - started:.0f} s; 1-minute load average "
                 f"{load_before} at the start, {load_average()} at the end (2 cores: above ~2 "
                 "other work shared the machine).")
    return "\n".join([setup, "", TABLE_HEAD, *rows_out, "", *(f"* {n}" for n in notes)])


# -- ingestion -------------------------------------------------------------------------------

def _events() -> list[str]:
    from services.common.events import Envelope

    out = []
    base = datetime.now(UTC) - timedelta(hours=1)
    for i in range(EVENTS // 2):
        number = tracking_number(10_000_000 + i)
        user = f"bench-new-{i}"
        for step, event_type in enumerate(("identity.enrollment.submitted",
                                           "identity.enrollment.verified")):
            out.append(Envelope.new(
                event_type, "identity", {"user_id": user}, subject=user,
                company_id=f"bench-co-{i % COMPANIES:04d}", tracking_number=number,
                occurred_at=base + timedelta(seconds=i * 0.01 + step)).to_json())
    return out


def ingest_events(backends: Backends, url: str) -> tuple[Result, str]:
    """Start the consumers (blocked on an empty stream), publish every event at once, and
    time until every one is stored; count in = count stored."""
    from services.common.db import Database
    from services.common.streams import events_stream

    namespace = backends.namespace
    payloads = _events()
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": backends.redis_url,
           "REDIS_NAMESPACE": namespace, "LOG_LEVEL": "WARNING"}
    log_path = os.path.join(backends.tmp, "consumers.log")
    with open(log_path, "w") as log_file:
        procs = [subprocess.Popen([sys.executable, "-m", "bench.tracking_bench", "consume"],
                                  cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log_file,
                                  text=True) for _ in range(CONSUMERS)]
    db = Database(url)
    stream = events_stream("identity", namespace)
    try:
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a consumer did not start; see {log_path}")
        pids = [p.pid for p in procs]
        cpu_before = cpu_seconds(pids)
        t0 = time.monotonic()
        for start in range(0, len(payloads), 1000):
            pipe = backends.redis.pipeline(transaction=False)
            for payload in payloads[start:start + 1000]:
                pipe.xadd(stream, {"envelope": payload})
            pipe.execute()
        published = time.monotonic() - t0
        stored = 0
        query = text("SELECT count(*) FROM status_history WHERE event_type LIKE 'identity.%'")
        deadline = t0 + INGEST_SECONDS
        while time.monotonic() < deadline:
            with db.engine.connect() as conn:
                stored = conn.execute(query).scalar_one()
            if stored >= len(payloads):
                break
            time.sleep(0.05)
        elapsed = time.monotonic() - t0
        cpu = cpu_seconds(pids) - cpu_before
        rss = peak_rss_mib(pids)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
    # Settled after the stop: what was stored, and what is still in the group (not lost).
    with db.engine.connect() as conn:
        final = conn.execute(query).scalar_one()
    db.dispose()
    group = next((g for g in backends.redis.xinfo_groups(stream)
                  if g["name"] in (b"tracking", "tracking")), {})
    waiting = int(group.get("pending", 0) or 0) + int(group.get("lag", 0) or 0)
    with open(log_path) as log_file:
        log_text = log_file.read()
    failures = log_text.count("event handler failed")
    kinds = sorted(set(re.findall(r'"error_type": "(\w+)"', log_text)))
    result = Result(f"ingestion: identity events → tracking consumer ×{CONSUMERS} → PostgreSQL"
                    if backends.postgres else
                    f"ingestion: identity events → tracking consumer ×{CONSUMERS} → SQLite",
                    stored, max(len(payloads) - final - waiting, 0), elapsed, cpu, 0.0, 0.0,
                    rss, CONSUMERS)
    rate = stored / elapsed if elapsed else 0
    accounted = final + waiting == len(payloads)
    met = stored == len(payloads) and rate >= 2000
    note = (f">= 2,000 events/s, in = stored: {rate:,.0f} events/s; in {len(payloads):,}, stored "
            f"{stored:,} within the {INGEST_SECONDS} s window"
            + ("" if stored == len(payloads) else
               f" ({final:,} once stopped, {waiting:,} still in the group: "
               + ("none lost" if accounted else "**some unaccounted for**") + ")")
            + f"; {failures} handler failures retried{' (' + ', '.join(kinds) + ')' if kinds else ''}; published in {published:.1f} s"
            + (": met" if met else ": **missed**"))
    return result, note


def consume() -> int:
    """One consumer process: tracking's registry on its subscribed streams until SIGTERM."""
    from services.common.app import make_redis
    from services.common.db import Database
    from services.common.events import Consumer
    from services.common.logging import configure_logging
    from services.common.streams import SUBSCRIPTIONS, events_stream
    from services.tracking.handlers import registry
    from services.tracking.models import ProcessedEvent

    configure_logging("tracking-bench-consumer", "WARNING", True)
    namespace = os.environ["REDIS_NAMESPACE"]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    consumer = Consumer(Database(os.environ["DATABASE_URL"]), make_redis(os.environ["REDIS_URL"]),
                        group="tracking",
                        streams=[events_stream(s, namespace) for s in SUBSCRIPTIONS["tracking"]],
                        handler=registry, processed_model=ProcessedEvent, namespace=namespace,
                        block_ms=200, batch_size=CONSUMER_BATCH)
    consumer.ensure_groups()
    print("ready", flush=True)
    consumer.run(stop)
    return 0


def _profile(env: dict[str, str], key: str, calls: list[Call]) -> str:
    import logging

    from services.tracking.app import create_app

    app = create_app({"database_url": env["DATABASE_URL"], "redis_url": env["REDIS_URL"],
                      "redis_namespace": env["REDIS_NAMESPACE"], "issuer": env["OIDC_ISSUER"],
                      "jwks_url": env["JWKS_URL"], "log_level": "WARNING"})
    logging.getLogger().setLevel(logging.WARNING)
    return f"Missed target `{key}`: profile\n" + profile_calls(app, calls, count=300)


if __name__ == "__main__":
    if sys.argv[1:] == ["consume"]:
        sys.exit(consume())
    sys.exit(f"usage: {sys.argv[0]} consume")

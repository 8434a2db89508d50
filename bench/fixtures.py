"""Set-up shared by the benchmark modules: where the data lives (PostgreSQL and the
machine's Redis when they answer, else SQLite and an embedded redis-server), databases
migrated with Alembic, identity bootstrapped through its own use cases, and a local
token issuer for the services that only verify tokens.

Everything listens on 127.0.0.1 and everything created here is removed on exit.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import redis
from sqlalchemy import create_engine, text

from services.common.db import upgrade

POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL",
                                    "postgresql://postgres@127.0.0.1:5432/postgres")
MACHINE_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
LOOPBACK = "127.0.0.1"


def _psycopg(url: str) -> str:
    return "postgresql+psycopg://" + url.split("://", 1)[1]


def postgres_answers() -> bool:
    try:
        engine = create_engine(_psycopg(POSTGRES_ADMIN_URL),
                               connect_args={"connect_timeout": 2})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


class Backends:
    """The database server and Redis of one benchmark module (a context manager).

    ``database(name)`` hands out an empty, migrated database per service;
    ``namespace`` is a Redis key prefix of this run only.
    """

    def __init__(self, *, force_sqlite: bool = False) -> None:
        self.postgres = not force_sqlite and postgres_answers()
        self.tmp = tempfile.mkdtemp(prefix="portico-bench-")
        self.namespace = f"bench{uuid.uuid4().hex[:8]}"
        self._databases: list[str] = []
        self._embedded = None
        self.redis_url = MACHINE_REDIS_URL

    def __enter__(self) -> Backends:
        if not redis_answers(self.redis_url):
            from tests.support import EmbeddedRedis

            self._embedded = EmbeddedRedis().start()
            self.redis_url = self._embedded.url
        self.redis = redis.Redis.from_url(self.redis_url)
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(redis.RedisError):
            for name in self.redis.scan_iter(match=f"{self.namespace}*", count=1000):
                self.redis.delete(name)
        if self._embedded is not None:
            self._embedded.stop()
        if self.postgres and self._databases:
            engine = create_engine(_psycopg(POSTGRES_ADMIN_URL), isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                for name in self._databases:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            engine.dispose()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @property
    def describe(self) -> str:
        db = "PostgreSQL" if self.postgres else "SQLite (PostgreSQL did not answer)"
        rds = ("the machine's Redis" if self._embedded is None
               else "an embedded redis-server (the machine's Redis did not answer)")
        return f"{db}, {rds}"

    def database(self, service: str, *, migrate: bool = True) -> str:
        """A new empty database for ``service`` with its migrations applied; its URL."""
        if self.postgres:
            name = f"portico_bench_{service}"
            engine = create_engine(_psycopg(POSTGRES_ADMIN_URL), isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            engine.dispose()
            self._databases.append(name)
            url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        else:
            url = f"sqlite:///{os.path.join(self.tmp, service + '.db')}"
        if migrate:
            upgrade(service, url)
        return url

    def service_env(self, database_url: str, **extra: str) -> dict[str, str]:
        """Environment of a service process under gunicorn."""
        return {"DATABASE_URL": database_url, "REDIS_URL": self.redis_url,
                "REDIS_NAMESPACE": self.namespace, "LOG_JSON": "true", **extra}


# -- identity ------------------------------------------------------------------------------

BENCH_PASSWORD = "correct horse battery staple bench"  # noqa: S105 (a throwaway local user)


@dataclass(frozen=True)
class IdentityFixture:
    machine_client_id: str
    machine_secret: str
    rp_client_id: str
    rp_secret: str
    redirect_uri: str
    usernames: list[str]
    user_ids: list[str]
    password: str = BENCH_PASSWORD
    # Users of the passkey sign-in row, apart: once a user has a passkey, the password
    # alone no longer signs them in (the passkey is asked as a second step).
    passkey_usernames: list[str] = field(default_factory=list)


def bootstrap_identity(database_url: str, users: int = 4,
                       passkey_users: int = 0) -> IdentityFixture:
    """Signing keys (ES256 + RS256), a machine client (client_credentials, audience
    ``permissions``), a first-party web client (code + refresh), ``users`` users and
    ``passkey_users`` more (with the same password; their passkeys are added over HTTP
    by the benchmark), all through identity's own use cases (the same code ``iamctl``
    runs)."""
    from cryptography.fernet import Fernet

    from services.common.config import load
    from services.common.db import Database
    from services.identity.clients import ClientSpec, create_client
    from services.identity.oidc import keys
    from services.identity.service import NewUser, create_user
    from services.identity.settings import IdentitySettings

    settings = load(IdentitySettings, {"DATABASE_URL": database_url})
    db = Database(database_url)
    redirect_uri = "http://127.0.0.1:9/callback"  # never followed: the code is read from Location
    with db.transaction() as session:
        keys.ensure_keys(session, Fernet(settings.key_encryption_key))
        machine, machine_secret = create_client(session, settings.client_secret_pepper, ClientSpec(
            name="bench-machine", grant_types=["client_credentials"],
            scope="permissions.check permissions.read", allowed_audiences=["permissions"]))
        rp, rp_secret = create_client(session, settings.client_secret_pepper, ClientSpec(
            name="bench-portal", redirect_uris=[redirect_uri],
            grant_types=["authorization_code", "refresh_token"],
            scope="openid profile email offline_access", first_party=True))
        created = [create_user(session, NewUser(
            username=f"bench.{kind}{i}", password=BENCH_PASSWORD,
            email=f"bench.{kind}{i}@example.com", given_name="Bench",
            family_name=f"{kind.title()}{i}", company_id="bench-co"))
            for kind, count in (("user", users), ("passkey", passkey_users))
            for i in range(count)]
        fixture = IdentityFixture(
            machine.client_id, machine_secret or "", rp.client_id, rp_secret or "",
            redirect_uri, [u.username for u in created[:users]],
            [u.id for u in created[:users]],
            passkey_usernames=[u.username for u in created[users:]])
    db.dispose()
    return fixture


def insert_refresh_tokens(database_url: str, fixture: IdentityFixture, count: int) -> list[str]:
    """``count`` fresh refresh tokens of the web client, each its own family, inserted the
    way identity stores them (SHA-256 digest): a pool to feed the refresh grant once each."""
    import secrets
    from datetime import timedelta

    from services.common.db import Database
    from services.common.events import utcnow
    from services.identity.oidc.models import RefreshToken
    from services.identity.oidc.records import digest

    tokens = [secrets.token_urlsafe(48) for _ in range(count)]
    now = utcnow()
    rows = [{"token_digest": digest(t), "family_id": uuid.uuid4().hex,
             "client_id": fixture.rp_client_id,
             "user_id": fixture.user_ids[i % len(fixture.user_ids)],
             "scope": "openid profile offline_access", "resource": None,
             "auth_time": int(time.time()), "sid": None, "created_at": now,
             "expires_at": now + timedelta(days=1)} for i, t in enumerate(tokens)]
    db = Database(database_url)
    with db.transaction() as session:
        for start in range(0, len(rows), 5000):
            session.execute(RefreshToken.__table__.insert(), rows[start:start + 5000])
    db.dispose()
    return tokens


# -- a local token issuer ------------------------------------------------------------------

class TokenIssuer:
    """An ES256 key whose JWKS is served on loopback (``issuer`` + ``/jwks``): services that
    only verify tokens (permissions, tracking) accept what :meth:`issue` mints."""

    def __init__(self) -> None:
        from joserfc.jwk import ECKey

        self.key = ECKey.generate_key("P-256", parameters={"kid": "bench-es256", "alg": "ES256",
                                                           "use": "sig"}, private=True)
        public = {k: v for k, v in self.key.as_dict(private=False).items() if k != "d"}
        body = json.dumps({"keys": [public]}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                self.send_response(200 if self.path == "/jwks" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.issuer = f"http://{LOOPBACK}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> TokenIssuer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def env(self) -> dict[str, str]:
        return {"OIDC_ISSUER": self.issuer, "JWKS_URL": self.issuer + "/jwks"}

    def issue(self, *, sub: str, aud: str, scope: str, ttl: int = 3600, **claims: Any) -> str:
        from joserfc import jwt

        now = int(time.time())
        body = {"iss": self.issuer, "sub": sub, "aud": aud, "scope": scope, "iat": now,
                "nbf": now, "exp": now + ttl, "jti": uuid.uuid4().hex,
                "client_id": claims.pop("client_id", "bench"), **claims}
        return jwt.encode({"alg": "ES256", "kid": "bench-es256", "typ": "at+jwt"}, body,
                          self.key)


@contextlib.contextmanager
def timed(label: str, log: list[str]) -> Iterator[None]:
    """Record how long a set-up step took (printed with the module's notes)."""
    started = time.monotonic()
    yield
    log.append(f"{label}: {time.monotonic() - started:.1f} s")


def profile_calls(app: Any, calls: list[Any], count: int = 300, top: int = 10,
                  warmup: int = 20) -> str:
    """cProfile ``count`` requests (``harness.Call``s, cycled) through ``app``'s test client
    in this process; the top functions by own time, as Markdown list lines. Used only to
    explain a missed target (pyinstrument/py-spy are not in the venv)."""
    import cProfile
    import io
    import pstats

    client = app.test_client()

    def once(i: int) -> None:
        call = calls[i % len(calls)]
        client.open(call.path, method=call.method, data=call.body or None,
                    headers=call.headers)

    for i in range(warmup):
        once(i)
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(count):
        once(warmup + i)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=io.StringIO())
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = []
    for (path, line, func), (_cc, ncalls, tottime, cumtime, _callers) in sorted(
            stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:top]:  # type: ignore[attr-defined]
        short = path.split("site-packages/")[-1].split("/work/main/")[-1]
        rows.append(f"  - `{short}:{line}` `{func}`: {tottime / count * 1000:.2f} ms own "
                    f"({tottime / total:.0%}), {cumtime / count * 1000:.2f} ms cumulative, "
                    f"{ncalls / count:g} calls/request")
    return (f"  cProfile of {count} requests in-process after {warmup} warm-up requests: "
            f"{total / count * 1000:.2f} ms per request (wall, profiler overhead included); top own time:\n" + "\n".join(rows))

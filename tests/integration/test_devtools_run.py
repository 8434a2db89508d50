"""`make run` for real: the runner starts the whole suite, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import contextlib
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
import urllib.request
from email.message import EmailMessage
from pathlib import Path

import psutil
import pytest
import redis
from sqlalchemy import create_engine, inspect

from tests.support import free_port

SERVICES = ("identity", "permissions", "tracking", "notifier")
READY_WITHIN = 60
STOPPED_WITHIN = 30


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _console_page(port: int, deadline: float) -> bool:
    """Whether the console serves its sign-in page before ``deadline``."""
    while time.monotonic() < deadline + 15:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                if response.status == 200 and b'id="login"' in response.read():
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return any(p.info["status"] != psutil.STATUS_ZOMBIE
               for p in psutil.process_iter(["status"]) if _pgid(p) == pgid)


def _pgid(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except ProcessLookupError:
        return None


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _log_tail(path: Path) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-40:])


@pytest.mark.slow
def test_make_run_on_embedded_defaults_serves_everything_and_ctrl_c_stops_every_process(tmp_path):
    databases = {s: f"sqlite:///{tmp_path / 'var' / (s + '.db')}" for s in SERVICES}
    _run_suite(tmp_path, given={}, databases=databases, embedded_redis=True)


@pytest.mark.slow
def test_make_run_uses_the_given_redis_url_and_database_urls(tmp_path, database_url, redis_url,
                                                             namespace):
    databases = {s: database_url(s) for s in SERVICES}
    given = {f"{s.upper()}_DATABASE_URL": url for s, url in databases.items()}
    given.update({"REDIS_URL": redis_url, "REDIS_NAMESPACE": namespace})
    _run_suite(tmp_path, given=given, databases=databases, embedded_redis=False)
    assert not (tmp_path / "var" / "identity.db").exists()


def _run_suite(tmp_path: Path, *, given: dict[str, str], databases: dict[str, str],
               embedded_redis: bool) -> None:
    ports = {f"{s.upper()}_PORT": free_port() for s in SERVICES}
    ports["SMTP_PORT"] = free_port()
    ports["CONSOLE_PORT"] = free_port()
    if embedded_redis:
        ports["REDIS_PORT"] = free_port()
    # Only what this test gives: nothing from the machine's REDIS_URL or *_DATABASE_URL.
    env = {k: v for k, v in os.environ.items()
           if not k.endswith("_URL") and k not in {"MAIL_DIR", "PROCFILE", "REDIS_NAMESPACE"}}
    env.update({k: str(v) for k, v in ports.items()})
    env.update(given)
    env["PORTICO_VAR_DIR"] = str(tmp_path / "var")
    log_path = tmp_path / "run.log"

    with open(log_path, "wb") as log:
        runner = subprocess.Popen([sys.executable, "-m", "services.devtools.run"], cwd=tmp_path,
                                  env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    started: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + READY_WITHIN
        pending = list(SERVICES)
        while pending and time.monotonic() < deadline:
            assert runner.poll() is None, f"the runner exited early:\n{_log_tail(log_path)}"
            pending = [s for s in pending if not _healthy(ports[f"{s.upper()}_PORT"])]
            time.sleep(0.5)
        assert not pending, f"no 200 from /healthz of {pending}:\n{_log_tail(log_path)}"
        # The console answers its sign-in page (registered as an OIDC client on first start).
        assert _console_page(ports["CONSOLE_PORT"], deadline), _log_tail(log_path)

        if embedded_redis:
            assert redis.Redis(port=ports["REDIS_PORT"], socket_timeout=2).ping()
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "a@portico.test", "b@example.com", "ping"
        message["Message-ID"] = "<runtime-check@portico.test>"
        message.set_content("hello")
        with smtplib.SMTP("127.0.0.1", ports["SMTP_PORT"], timeout=10) as client:
            client.send_message(message)
        saved = list((tmp_path / "var" / "mail").glob("*.eml"))
        assert len(saved) == 1 and b"<runtime-check@portico.test>" in saved[0].read_bytes()

        started = psutil.Process(runner.pid).children(recursive=True)
        commands = [" ".join(p.cmdline()) for p in started]
        names = "\n".join(commands)
        assert any("redis-server" in c for c in commands) is embedded_redis, names
        assert "gunicorn" in names and "services.devtools.smtp_sink" in names, names
        for service in SERVICES:
            assert f"iamctl worker {service}" in names, names
        groups = {_pgid(p) for p in started} - {None}
        time.sleep(1)  # let the banner print before asking the runner to stop

        os.killpg(runner.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        runner.wait(STOPPED_WITHIN)

        output = log_path.read_text(errors="replace")
        assert "Portico is up:" in output
        assert "console" in output and "bootstrap.json" in output
        assert ("embedded Redis stopped" in output) is embedded_redis
        leftovers = [p.pid for p in started if _alive(p.pid)]
        assert not leftovers, f"still running after Ctrl-C: {leftovers}"
        assert not [g for g in groups | {runner.pid} if _group_alive(g)]
        assert not [name for name, port in ports.items() if _listening(port)]
    finally:
        if runner.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
        for process in started:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()

    # The runner applied every service's migrations to the databases it was told to use.
    for service, url in databases.items():
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            assert f"alembic_version_{service}" in inspect(engine).get_table_names()
        finally:
            engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_the_suite_is_still_starting_leaves_nothing_behind(tmp_path, signum):
    ports = {f"{s.upper()}_PORT": free_port() for s in SERVICES}
    ports.update(SMTP_PORT=free_port(), REDIS_PORT=free_port(), CONSOLE_PORT=free_port())
    env = {k: v for k, v in os.environ.items() if not k.endswith("_URL")}
    env.update({k: str(v) for k, v in ports.items()}, PORTICO_VAR_DIR=str(tmp_path / "var"))
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as log:
        runner = subprocess.Popen([sys.executable, "-m", "services.devtools.run"], cwd=tmp_path,
                                  env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    seen: dict[int, psutil.Process] = {}
    try:
        deadline = time.monotonic() + READY_WITHIN
        while "migrations applied" not in log_path.read_text() and time.monotonic() < deadline:
            assert runner.poll() is None, _log_tail(log_path)
            time.sleep(0.01)
        # honcho is forking the Procfile's processes right now.
        time.sleep(0.05)
        os.killpg(runner.pid, signum)
        while runner.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(psutil.NoSuchProcess):
                for child in psutil.Process(runner.pid).children(recursive=True):
                    seen.setdefault(child.pid, child)
            time.sleep(0.05)
        assert runner.poll() is not None, f"the runner did not stop:\n{_log_tail(log_path)}"
        time.sleep(1)
        leftovers = [p.pid for p in seen.values() if _alive(p.pid)]
        assert not leftovers, f"still running: {leftovers}\n{_log_tail(log_path)}"
        assert not [name for name, port in ports.items() if _listening(port)]
    finally:
        if runner.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
        for process in seen.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()

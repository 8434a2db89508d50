"""The whole suite as real processes (``python -m services.devtools.run``, as ``make run``),
on free ports, with its own data directory, databases and Redis namespace.

Also: mail from the SMTP sink's ``.eml`` files, iamctl with the suite's environment, and
plain HTTP calls for the parts of a test that are set-up rather than the journey itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import psutil
import requests

from services.devtools import mailbox
from tests.support import free_port

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("identity", "permissions", "tracking", "notifier")
READY_WITHIN = 90.0
STOP_WITHIN = 30.0
MAIL_WITHIN = 30.0

# What the journey needs from the suite: fast redelivery of an event whose recipient the
# notifier has not seen yet (streams of different services are not ordered), fast mail
# retries, a plain-http session cookie. The rate limits stay on, only roomier per IP:
# every browser and API call of the module comes from 127.0.0.1.
JOURNEY_ENV = {
    "WORKER_CLAIM_IDLE_MS": "1000",
    "WORKER_RELAY_INTERVAL_MS": "100",
    "NOTIFY_BACKOFF_BASE_SECONDS": "1",
    "NOTIFY_POLL_SECONDS": "0.2",
    "SESSION_COOKIE_SECURE": "false",
    "LOGIN_RATE_LIMIT": "60 per minute",
    "ENROLLMENT_RATE_LIMIT_IP": "60 per minute",
    "ACTIVATION_RATE_LIMIT_IP": "60 per minute",
    "RECOVERY_RATE_LIMIT_IP": "30 per minute",
    "WEB_WORKERS": "1",
    # The journeys go straight on after sign-in; test_mfa_policy.py meets the page through
    # a company policy that requires a factor (which asks whatever this says).
    "MFA_PROMPT_OPTIONAL": "false",
    "LOG_LEVEL": "WARNING",
    # Identity's pages and the notifier's emails must show the same help desk.
    "HELPDESK_PHONE": "+1 202 555 0199",
}


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:  # noqa: S310
            return response.status == 200
    except OSError:
        return False


def log_tail(path: Path, lines: int = 60) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Suite:
    """A running suite: its URLs, environment, mail directory and log."""

    root: Path
    env: dict[str, str]
    ports: dict[str, int]
    process: subprocess.Popen | None = None
    extra: list[subprocess.Popen] = field(default_factory=list)
    seen_mail: set[str] = field(default_factory=set)

    @property
    def var_dir(self) -> Path:
        return Path(self.env["PORTICO_VAR_DIR"])

    @property
    def mail_dir(self) -> Path:
        return Path(self.env["MAIL_DIR"])

    @property
    def log_path(self) -> Path:
        return self.root / "run.log"

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @property
    def identity(self) -> str:
        return self.url("identity")

    @property
    def portal(self) -> str:
        return self.url("portal")

    @property
    def permissions(self) -> str:
        return self.url("permissions")

    # -- life cycle -------------------------------------------------------------------
    def start(self) -> Suite:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.devtools.run"], cwd=REPO, env=self.env,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        deadline = time.monotonic() + READY_WITHIN
        pending = [*SERVICES, "portal"]
        while pending and time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the suite exited early:\n{log_tail(self.log_path)}")
            pending = [name for name in pending if not _healthy(self.url(name))]
            if pending:
                time.sleep(0.3)
        if pending:
            raise RuntimeError(f"no /healthz from {pending} within {READY_WITHIN:.0f} s:\n"
                               f"{log_tail(self.log_path)}")
        return self

    def start_identity(self, port: int, **env: str) -> str:
        """One more identity process (gunicorn) on the suite's data, with ``env`` on top
        (e.g. ``CLOCK_OFFSET_DAYS``); returns its URL. Stopped with the suite."""
        child_env = {**self.plan_env(), **env}
        log = open(self.root / f"identity-{port}.log", "ab")  # noqa: SIM115 - kept for the process
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "--bind", f"127.0.0.1:{port}",
             "--workers", "1", "--threads", "4", "--no-control-socket",
             "services.identity.app:create_app()"],
            cwd=REPO, env=child_env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self.extra.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while not _healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the extra identity did not start:\n"
                                   f"{log_tail(self.root / f'identity-{port}.log')}")
            time.sleep(0.2)
        return url

    def stop(self) -> None:
        """SIGINT to the runner's process group (what Ctrl-C sends), then SIGKILL whatever
        of it is left; the extra processes likewise."""
        for process in [*self.extra, *([self.process] if self.process else [])]:
            children = []
            with contextlib.suppress(psutil.NoSuchProcess):
                children = psutil.Process(process.pid).children(recursive=True)
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGINT if process is self.process
                              else signal.SIGTERM)
                try:
                    process.wait(STOP_WITHIN)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            for child in children:
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()

    def plan_env(self) -> dict[str, str]:
        """The environment the runner gives its children (ports, URLs, REDIS_URL...)."""
        from services.devtools.run import make_plan

        return make_plan(self.env).env

    # -- tools -------------------------------------------------------------------------
    def iamctl(self, *args: str) -> dict:
        done = subprocess.run([str(Path(sys.executable).parent / "iamctl"), *args], cwd=REPO,
                              env=self.plan_env(), capture_output=True, text=True, check=False,
                              timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"iamctl {' '.join(args)} failed: {done.stderr.strip()}")
        return json.loads(done.stdout)

    def client_token(self, client: Mapping[str, str], scope: str, audience: str) -> str:
        response = requests.post(f"{self.identity}/token", timeout=10,
                                 auth=(client["client_id"], client["client_secret"]),
                                 data={"grant_type": "client_credentials", "scope": scope,
                                       "audience": audience})
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def mail(self, to: str, subject: str | Callable[[str], bool], *,
             within: float = MAIL_WITHIN) -> EmailMessage:
        """The first not-yet-read email to ``to`` whose subject contains ``subject`` (or
        satisfies it), waiting for it to arrive."""
        matches = subject if callable(subject) else (lambda s: subject in s)
        deadline = time.monotonic() + within
        while True:
            for message_id in reversed(mailbox.message_ids(self.mail_dir)):  # oldest first
                if message_id in self.seen_mail:
                    continue
                message = mailbox.read(self.mail_dir, message_id)
                if to.lower() in str(message.get("To", "")).lower() and matches(
                        str(message.get("Subject", ""))):
                    self.seen_mail.add(message_id)
                    return message
            if time.monotonic() > deadline:
                got = [(s.to, s.subject) for s in mailbox.summaries(self.mail_dir)]
                raise AssertionError(f"no email to {to} with subject {subject!r} within "
                                     f"{within:.0f} s; the sink holds {got}\n"
                                     f"{log_tail(self.log_path, 30)}")
            time.sleep(0.2)


def link_in(message: EmailMessage, path: str) -> str:
    """The URL in the text body whose path starts with ``path``."""
    text = mailbox.body(message) or ""
    found = re.search(r"https?://[^\s\"'<>]+" + re.escape(path) + r"[^\s\"'<>]*", text)
    assert found, f"no {path} link in: {text}"
    return found.group(0)


def access_code_in(message: EmailMessage) -> str:
    text = mailbox.body(message) or ""
    found = re.search(r"\b([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})\b", text)
    assert found, f"no Access Code in: {text}"
    return found.group(1)


def suite_env(root: Path, databases: Mapping[str, str], redis_url: str | None) -> tuple[
        dict[str, str], dict[str, int]]:
    """The runner's environment: free ports, the data directory under ``root``, the given
    databases, ``redis_url`` (else the runner embeds one) and the journey's settings."""
    ports = {name: free_port() for name in (*SERVICES, "portal", "console", "smtp", "redis")}
    # Nothing from the machine's own URLs, namespaces or mail directory.
    env = {k: v for k, v in os.environ.items()
           if not k.endswith("_URL") and k not in {"MAIL_DIR", "PROCFILE", "REDIS_NAMESPACE",
                                                   "PORTICO_VAR_DIR", "CLOCK_OFFSET_DAYS"}}
    env.update({f"{name.upper()}_PORT": str(port) for name, port in ports.items()})
    env.update(JOURNEY_ENV)
    env["PORTICO_VAR_DIR"] = str(root / "var")
    env["MAIL_DIR"] = str(root / "var" / "mail")
    env["REDIS_NAMESPACE"] = f"browser{uuid.uuid4().hex[:10]}"
    env.update({f"{service.upper()}_DATABASE_URL": url for service, url in databases.items()})
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env, ports

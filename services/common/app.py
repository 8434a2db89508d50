"""Flask app-factory helpers shared by the four services.

:func:`create_service_app` gives every service the same request ids, JSON logs,
problem+json errors, ``/healthz``, ``/readyz`` and ``/metrics``. Nothing is built
at import time.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis
from flask import Flask, Response, current_app, g, has_app_context, jsonify, request
from marshmallow import ValidationError
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from .config import CommonSettings
from .db import Database, service_database
from .domain_errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from .errors import (
    DEPENDENCY_ERRORS,
    INVALID_TITLE,
    Problem,
    problem_response,
    unavailable_problem,
    validation_problem,
)
from .events import utcnow
from .fastpath import NUL_MARKERS, FastRoutes
from .logging import AccessLog, configure_logging
from .metrics import ensure_multiprocess_dir
from .watched import WatchedKeys, readable

log = logging.getLogger("portico.http")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@dataclass
class ServiceContext:
    """What a service's views and use cases reach through ``current_app``."""

    name: str
    settings: Any
    db: Database
    redis: redis.Redis
    registry: CollectorRegistry
    fast_routes: FastRoutes
    # Redis keys read on every request, held in process (components add their prefixes).
    watched: WatchedKeys
    readiness_checks: dict[str, Callable[[], bool]] = field(default_factory=dict)
    # The service's one clock: every use case a view calls reads the time from it (a test
    # replaces it to move time).
    clock: Callable[[], datetime] = utcnow

    def now(self) -> datetime:
        return self.clock()


def context(app: Flask | None = None) -> ServiceContext:
    return (app or current_app).extensions["portico"]


class ThreadBoundRedis(redis.Redis):
    """A client whose single commands run on their thread's own connection.

    Why not redis-py's default: its pool checks a connection out and back in around
    every command (a lock, a liveness check of the socket, bookkeeping), and the hot
    endpoints make one Redis call each. A thread keeps one connection instead, made
    outside the pool so that a finished thread's is closed when collected; a forked
    child makes its own. It is checked for liveness before each command as the pool
    does. Pipelines and pub/sub still take theirs from the pool. Errors behave as
    before: redis-py disconnects a failed connection and the next command reconnects.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._bound = threading.local()
        super().__init__(*args, **kwargs)

    @property  # type: ignore[override]
    def connection(self) -> redis.connection.AbstractConnection:
        bound = self._bound
        conn = getattr(bound, "connection", None)
        if conn is None or bound.pid != os.getpid():
            pool = self.connection_pool
            conn = pool.connection_class(**pool.connection_kwargs)
            bound.connection, bound.pid = conn, os.getpid()
        return conn

    @connection.setter
    def connection(self, _value: object) -> None:
        """redis-py's own assignments (None at start, on close) do not apply here."""

    def execute_command(self, *args: Any, **options: Any) -> Any:
        conn = self.connection
        if conn.is_connected and readable(conn):
            # As the pool does on checkout: a socket with something to read before a
            # command was sent is closed (server restarted, client killed) or out of
            # step. Reconnect rather than fail the command.
            conn.disconnect()
        return super().execute_command(*args, **options)


def make_redis(url: str) -> redis.Redis:
    """A Redis client with timeouts always set, so a dead Redis fails fast instead of hanging."""
    return ThreadBoundRedis.from_url(
        url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30,
        decode_responses=False,
    )


def create_service_app(name: str, settings: CommonSettings, *, import_name: str | None = None,
                       template_folder: str | None = None) -> Flask:
    """A Flask app for service ``name`` with the kernel's cross-cutting behaviour installed."""
    configure_logging(name, settings.log_level, settings.log_json)
    ensure_multiprocess_dir(settings.metrics_dir)
    app = Flask(import_name or f"services.{name}", template_folder=template_folder)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_content_length
    app.config["JSON_SORT_KEYS"] = False
    db = service_database(settings)
    registry = CollectorRegistry(auto_describe=True)
    observer = HttpObserver(name, registry, settings.access_log)
    fast_routes = FastRoutes(app.wsgi_app, max_content_length=settings.max_content_length,
                             observe=observer.observe, request_id_for=request_id_for,
                             on_request=lambda: freeze_startup_heap(app))
    app.wsgi_app = fast_routes  # type: ignore[method-assign]
    client = make_redis(settings.redis_url)
    ctx = ServiceContext(name=name, settings=settings, db=db, redis=client, registry=registry,
                         fast_routes=fast_routes, watched=WatchedKeys(client, ()))
    ctx.readiness_checks["database"] = db.ping
    ctx.readiness_checks["redis"] = lambda: _redis_ping(ctx.redis)
    app.extensions["portico"] = ctx
    if settings.trusted_proxy_hops:
        # Behind the ingress every request comes from the controller's address: without
        # this, per-IP rate limits would be one budget shared by all users, and audit
        # records would name the controller. Only as many X-Forwarded-For entries as
        # there are trusted hops are believed (the rightmost: a client's own are not).
        hops = settings.trusted_proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    _install_heap_freeze(app)
    _install_request_ids(app)
    _install_nul_guard(app)
    _install_metrics(app, registry, observer, settings.metrics_dir)
    _install_errors(app)
    _install_health(app)
    return app


def _redis_ping(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def request_id() -> str | None:
    """This request's id; None outside a Flask request (e.g. on a fast route)."""
    return getattr(g, "request_id", None) if has_app_context() else None


def _install_nul_guard(app: Flask) -> None:
    """Refuse NUL characters in the query, a form or a JSON body with one clear 400.

    No field of any Portico API can hold one, and PostgreSQL text refuses them, so
    letting one through would turn a client's mistake into a 500. JSON can only carry
    it escaped (``\\u0000``), a query or form only percent-encoded (``%00``).
    """

    @app.before_request
    def _refuse_nul() -> None:
        if b"%00" in request.query_string:
            raise Problem(400, "invalid-character", "The query string contains a NUL character.")
        markers = NUL_MARKERS.get(request.mimetype)
        if markers and any(marker in request.get_data(cache=True) for marker in markers):
            raise Problem(400, "invalid-character", "The request body contains a NUL character.")


_heap_frozen = False


def freeze_startup_heap(app: Flask) -> None:
    """Move what exists at the first request (modules, the app, its pools) out of the
    garbage collector's sight, once per process (``gc.freeze``).

    Every full collection walked them, and no thread of the worker runs meanwhile: the
    tail of every endpoint's latency.
    They are not garbage (they live as long as the process), so nothing is lost. Not in
    tests, where many apps come and go in one process and must stay collectable.
    """
    global _heap_frozen
    if not _heap_frozen and not app.testing:
        _heap_frozen = True
        gc.collect()
        gc.freeze()


def _install_heap_freeze(app: Flask) -> None:
    app.before_request(lambda: freeze_startup_heap(app))


def request_id_for(incoming: str) -> str:
    """The caller's X-Request-ID if it is safe to echo and log, else a new one."""
    return incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex


def _install_request_ids(app: Flask) -> None:
    @app.before_request
    def _assign_request_id() -> None:
        g.request_id = request_id_for(request.headers.get("X-Request-ID", ""))
        g.started_at = time.perf_counter()

    @app.after_request
    def _echo_request_id(response: Response) -> Response:
        rid = getattr(g, "request_id", None)
        if rid:
            response.headers["X-Request-ID"] = rid
        return response


SLOW_REQUEST_SECONDS = 1.0


class HttpObserver:
    """Counts, times and logs each answered request, for Flask's views and the fast
    routes alike (:mod:`services.common.fastpath`)."""

    def __init__(self, name: str, registry: CollectorRegistry, access_log: str = "all") -> None:
        self.name = name
        self.requests_total = Counter(
            "portico_http_requests_total", "HTTP requests answered",
            ["service", "endpoint", "method", "status"], registry=registry,
        )
        self.latency = Histogram(
            "portico_http_request_duration_seconds", "Time to answer an HTTP request",
            ["service", "endpoint", "method"], registry=registry,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        # labels() looks its child up under a lock on every call; keep the children.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[tuple[str, str], Any] = {}
        self.log_every_request = access_log == "all"
        self.access_log = AccessLog(log)

    def observe(self, endpoint: str, method: str, status: int, elapsed: float | None,
                request_id: str | None) -> None:
        """One answer to ``method endpoint`` (the route's rule, not the path, so that
        /v1/transactions/<tn> stays one series); ``elapsed`` None: not timed."""
        if elapsed is not None:
            histogram = self._histograms.get((endpoint, method))
            if histogram is None:
                histogram = self._histograms[(endpoint, method)] = self.latency.labels(
                    self.name, endpoint, method)
            histogram.observe(elapsed)
            if self.log_every_request or status >= 400 or elapsed >= SLOW_REQUEST_SECONDS:
                self.access_log.write(method, endpoint, status, round(elapsed * 1000, 2),
                                      request_id)
        counter = self._counters.get((endpoint, method, status))
        if counter is None:
            counter = self._counters[(endpoint, method, status)] = self.requests_total.labels(
                self.name, endpoint, method, str(status))
        counter.inc()


def _install_metrics(app: Flask, registry: CollectorRegistry, observer: HttpObserver,
                     metrics_dir: str) -> None:
    @app.after_request
    def _observe(response: Response) -> Response:
        started = getattr(g, "started_at", None)
        observer.observe(request.url_rule.rule if request.url_rule else "unmatched",
                         request.method, response.status_code,
                         None if started is None else time.perf_counter() - started,
                         getattr(g, "request_id", None))
        return response

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(_scraped(registry, metrics_dir)),
                        mimetype=CONTENT_TYPE_LATEST)


def _scraped(registry: CollectorRegistry, metrics_dir: str) -> CollectorRegistry:
    """What a scrape reports: this process's registry, or, with ``PROMETHEUS_MULTIPROC_DIR``
    set (gunicorn with several workers), every worker's samples summed from that directory
    by prometheus_client's multi-process mode; a scrape otherwise saw only the one worker
    that answered it."""
    if not metrics_dir:
        return registry
    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged, path=metrics_dir)
    return merged


def log_dependency_unavailable(exc: Exception) -> None:
    """The exception's type only: a driver's message can name hosts, users and SQL."""
    log.error("dependency unavailable", extra={"error_type": type(exc).__name__,
                                                 "request_id": request_id()})


# A use case's refusal → its HTTP status (the first class it is an instance of).
DOMAIN_STATUS: tuple[tuple[type[DomainError], int], ...] = (
    (NotFound, 404), (Conflict, 409), (Forbidden, 403), (Invalid, 422))


def domain_problem(exc: DomainError) -> Problem:
    """The problem+json answer to a use case's refusal (a bare DomainError: 400); an
    Invalid one is titled as the kernel's other validation problems."""
    status = next((code for cls, code in DOMAIN_STATUS if isinstance(exc, cls)), 400)
    title = INVALID_TITLE if isinstance(exc, Invalid) else None
    return Problem(status, exc.kind, exc.detail, title=title, errors=exc.errors, **exc.extra)


def _install_errors(app: Flask) -> None:
    def _dependency_down(exc: Exception) -> Response:
        log_dependency_unavailable(exc)
        return problem_response(unavailable_problem(), request_id())

    for error in DEPENDENCY_ERRORS:
        app.register_error_handler(error, _dependency_down)

    @app.errorhandler(Problem)
    def _problem(exc: Problem) -> Response:
        return problem_response(exc, request_id())

    @app.errorhandler(DomainError)
    def _refused(exc: DomainError) -> Response:
        return problem_response(domain_problem(exc), request_id())

    @app.errorhandler(ValidationError)
    def _invalid(exc: ValidationError) -> Response:
        return problem_response(validation_problem(exc.messages), request_id())

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        headers = {}
        valid_methods = getattr(exc, "valid_methods", None)
        if status == 405 and valid_methods:
            headers["Allow"] = ", ".join(valid_methods)
        retry_after = getattr(exc, "retry_after", None)
        if status == 429:
            headers["Retry-After"] = str(retry_after or 60)
        detail = exc.description if status < 500 else None
        response = problem_response(Problem(status, detail=detail, headers=headers), request_id())
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error", extra={"request_id": request_id()})
        return problem_response(Problem(500, detail="An unexpected error occurred."), request_id())


def _install_health(app: Flask) -> None:
    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok", service=context().name)

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        checks = {name: bool(check()) for name, check in context().readiness_checks.items()}
        ready = all(checks.values())
        body = {"status": "ready" if ready else "unavailable", "checks": checks}
        return jsonify(body), (200 if ready else 503)

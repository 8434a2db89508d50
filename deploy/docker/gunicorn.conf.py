"""gunicorn settings for Portico's web processes, tuned for containers.

Every value comes from an environment variable with a container-friendly default,
so one file serves Kubernetes, docker-compose and `make run`
(``gunicorn --config deploy/docker/gunicorn.conf.py 'services.identity.app:create_app()'``).

Shutdown: on SIGTERM gunicorn stops accepting, lets in-flight requests finish for up
to ``graceful_timeout`` seconds, then kills what is left. Keep
``GUNICORN_GRACEFUL_TIMEOUT`` + the pod's preStop sleep below the pod's
``terminationGracePeriodSeconds`` (25 + 5 <= 30 in deploy/k8s).
"""

from __future__ import annotations

import os


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"configuration error: {name} has a bad value: expected a whole number") from None
    if value < 0:
        raise SystemExit(f"configuration error: {name} has a bad value: expected zero or more")
    return value


# The pod's network namespace is its own, so listening on every interface is intended.
_host = os.environ.get("HOST", "0.0.0.0")  # noqa: S104
bind = os.environ.get("GUNICORN_BIND") or f"{_host}:{_int('PORT', 8000)}"

workers = _int("GUNICORN_WORKERS", 2)
threads = _int("GUNICORN_THREADS", 4)
worker_class = "gthread"
# A worker silent for this long is killed and replaced (a stuck request).
timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 25)
# Longer than a load balancer's idle timeout would be pointless; shorter avoids races with it.
keepalive = _int("GUNICORN_KEEPALIVE", 5)
# Recycle workers now and then (bounded memory growth); jitter keeps them from restarting together.
max_requests = _int("GUNICORN_MAX_REQUESTS", 2000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 200)
backlog = _int("GUNICORN_BACKLOG", 2048)

# gunicorn's worker heartbeat files go to memory: the root filesystem is read-only and a
# disk-backed /tmp can stall the heartbeat and get healthy workers killed.
_SHM = "/dev/shm"  # noqa: S108 - gunicorn's documented choice for containers
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR") or (_SHM if os.path.isdir(_SHM) else None)
# No control socket: nothing operates gunicorn from inside the container.
control_socket_disable = True

# Which peers may set X-Forwarded-Proto (the ingress controller). Comma-separated IPs/CIDRs, or *.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# The app logs every request itself (JSON, with the request id); gunicorn's access log would
# only duplicate it. Errors go to stderr.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
capture_output = False

# Limits on what a client may send before the app sees it.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190


def on_starting(server):  # pragma: no cover - called by gunicorn
    """Start metrics from zero: an emptyDir survives a container restart, and samples
    left by the previous container's workers would be summed into this one's."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        import shutil

        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path, exist_ok=True)


def child_exit(server, worker):  # pragma: no cover - called by gunicorn
    """Drop a dead worker's samples when prometheus_client runs in multi-process mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)

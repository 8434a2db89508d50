"""Each web and worker Deployment's and each CronJob's container, started as the
manifests configure it: the ConfigMap's variables, its own ``env`` (secrets replaced by
working test values) and its ``args`` through the image's entrypoint mapping (``web
<service>`` → gunicorn with deploy/docker/gunicorn.conf.py, ``worker <service>`` →
``iamctl worker <service>``, ``iamctl ...`` as is). A web pod must pass the probes the
manifest declares and serve /metrics; a worker must come up (its heartbeat touched, its
metrics served on the port the pod declares); both must stop cleanly on SIGTERM; a
CronJob's command must finish with status 0.

Only the addresses of PostgreSQL and Redis, and paths under /tmp, are this test's own. A
variable the ConfigMap sets for every pod once crashed every worker at start
(``PROMETHEUS_MULTIPROC_DIR``, a directory only the web app made)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from cryptography.fernet import Fernet

from services.common.db import upgrade
from tests.support import IAMCTL, free_port, iamctl_worker

REPO = Path(__file__).resolve().parents[2]
GUNICORN_CONFIG = REPO / "deploy" / "docker" / "gunicorn.conf.py"
SERVICES = ("identity", "permissions", "tracking", "notifier")


def _deployed(base: list[dict[str, Any]], service: str, role: str) -> dict[str, Any]:
    [deployment] = [o for o in base if o["kind"] == "Deployment"
                    and o["metadata"]["name"] == f"{service}-{role}"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _cronjob_containers(base: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            ["containers"][0] for o in base if o["kind"] == "CronJob"}


def _as_deployed(k8s_check, service: str, role: str, url: str, redis_url: str, namespace: str,
                 tmp: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The ``role`` (web, worker) container of ``service`` and its environment, with the
    service's database at ``url`` migrated (the migrate Job's work)."""
    base = k8s_check.assemble_base()
    container = _deployed(base, service, role)
    assert container["args"] == [role, service]  # what the entrypoint maps to its command
    upgrade(service, url)
    return container, _environment(base, container, database_url=url, redis_url=redis_url,
                                   namespace=namespace, tmp=tmp)


def _port(container: dict[str, Any], name: str) -> int:
    [port] = [p["containerPort"] for p in container["ports"] if p["name"] == name]
    return port


CRONJOBS = sorted(_cronjob_containers(
    list(yaml.safe_load_all((REPO / "deploy" / "k8s" / "base" / "cronjobs.yaml").read_text()))))


def _secret_value(key: str, database_url: str, redis_url: str) -> str:
    if key.endswith("-database-url"):
        return database_url
    if key == "redis-url":
        return redis_url
    if key in ("event-sealing-key", "key-encryption-key"):
        return Fernet.generate_key().decode()
    return "test-" + key  # a pepper, SMTP credentials


def _environment(base: list[dict[str, Any]], container: dict[str, Any], *, database_url: str,
                 redis_url: str, namespace: str, tmp: Path) -> dict[str, str]:
    [config] = [o for o in base if o["kind"] == "ConfigMap"
                and o["metadata"]["name"] == "portico-config"]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert source["configMapRef"]["name"] == "portico-config"
        env.update(config["data"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            assert ref["name"] == "portico-secrets"
            env[item["name"]] = _secret_value(ref["key"], database_url, redis_url)
    # The pod's /tmp is its own emptyDir: here, this test's directory.
    for name, value in env.items():
        if value.startswith("/tmp/"):
            env[name] = str(tmp / value.removeprefix("/tmp/"))
    env["REDIS_NAMESPACE"] = namespace
    # As the prod overlay runs them: a key that a container is not given is then its
    # development default, and the process refuses to start (issue 24).
    env["PORTICO_ENV"] = "production"
    return env


@pytest.mark.slow
@pytest.mark.parametrize("service", SERVICES)
def test_the_worker_container_starts_serves_metrics_and_stops_on_sigterm(
        k8s_check, service, database_url, redis_url, namespace, tmp_path):
    container, env = _as_deployed(k8s_check, service, "worker", database_url(service),
                                  redis_url, namespace, tmp_path)
    assert int(env["WORKER_METRICS_PORT"]) == _port(container, "metrics")
    port = free_port()  # the pod's port, on this machine's loopback
    env["WORKER_METRICS_PORT"] = str(port)
    heartbeat = Path(env["HEARTBEAT_FILE"])
    log_path = tmp_path / "worker.log"
    with iamctl_worker(service, {"PATH": os.environ.get("PATH", ""), **env}, log_path) as worker:
        deadline = time.monotonic() + 30
        while not heartbeat.exists() and worker.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        assert heartbeat.exists(), log_path.read_text()
        scraped = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert scraped.status_code == 200 and "portico_events" in scraped.text
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0, log_path.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("name", CRONJOBS)
def test_the_cronjob_container_runs_its_command_to_success(
        k8s_check, name, database_url, redis_url, namespace, tmp_path):
    base = k8s_check.assemble_base()
    container = _cronjob_containers(base)[name]
    assert container["args"][0] == "iamctl"  # the entrypoint runs `iamctl ...` as is
    [service] = [item["valueFrom"]["secretKeyRef"]["key"].removesuffix("-database-url")
                 for item in container["env"] if item["name"] == "DATABASE_URL"]
    url = database_url(service)
    upgrade(service, url)  # the migrate Job's work
    env = _environment(base, container, database_url=url, redis_url=redis_url,
                       namespace=namespace, tmp=tmp_path)
    done = subprocess.run(
        [*IAMCTL, *container["args"][1:]],
        cwd=REPO, env={"PATH": os.environ.get("PATH", ""), **env}, capture_output=True,
        text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("service", SERVICES)
def test_the_web_container_passes_its_probes_serves_metrics_and_stops_on_sigterm(
        k8s_check, service, database_url, redis_url, namespace, tmp_path):
    container, env = _as_deployed(k8s_check, service, "web", database_url(service),
                                  redis_url, namespace, tmp_path)
    assert int(env["PORT"]) == _port(container, "http")
    port = free_port()  # the pod's port, on this machine's loopback
    env["GUNICORN_BIND"] = f"127.0.0.1:{port}"
    probes = {container[probe]["httpGet"]["path"]
              for probe in ("startupProbe", "readinessProbe", "livenessProbe")}
    # What the entrypoint's `web <service>` runs (deploy/docker/entrypoint.sh).
    command = [sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONFIG),
               "--name", f"portico-{service}", f"services.{service}.app:create_app()"]
    log_path = tmp_path / "web.log"
    with open(log_path, "wb") as log_file:
        web = subprocess.Popen(command, cwd=REPO, env={"PATH": os.environ.get("PATH", ""), **env},
                               stdout=log_file, stderr=subprocess.STDOUT)
        try:
            base_url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while web.poll() is None and time.monotonic() < deadline:
                try:  # a worker still booting may accept and answer late
                    requests.get(base_url + "/healthz", timeout=5)
                    break
                except requests.RequestException:
                    time.sleep(0.2)
            for path in sorted(probes) + ["/metrics"]:
                answer = requests.get(base_url + path, timeout=5)
                assert answer.status_code == 200, (path, answer.text, log_path.read_text())
            web.send_signal(signal.SIGTERM)
            assert web.wait(40) == 0, log_path.read_text()
        finally:
            if web.poll() is None:
                web.kill()
                web.wait()

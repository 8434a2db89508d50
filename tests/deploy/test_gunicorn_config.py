"""deploy/docker/gunicorn.conf.py: values from the environment, and a real gunicorn that
drains an in-flight request on SIGTERM."""

from __future__ import annotations

import os
import runpy
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from services.devtools.ports import free_port
from tests.deploy.conftest import REPO

CONFIG = REPO / "deploy" / "docker" / "gunicorn.conf.py"
GUNICORN_VARS = ("PORT", "HOST", "GUNICORN_BIND", "GUNICORN_WORKERS", "GUNICORN_THREADS",
                 "GUNICORN_TIMEOUT", "GUNICORN_GRACEFUL_TIMEOUT", "GUNICORN_MAX_REQUESTS",
                 "GUNICORN_MAX_REQUESTS_JITTER", "FORWARDED_ALLOW_IPS", "LOG_LEVEL")


@pytest.fixture
def clean_env(monkeypatch):
    for name in GUNICORN_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_container_defaults(clean_env):
    conf = runpy.run_path(str(CONFIG))
    assert conf["bind"] == "0.0.0.0:8000"
    assert (conf["workers"], conf["threads"], conf["timeout"], conf["graceful_timeout"]) == (2, 4, 30, 25)
    assert conf["max_requests"] > 0 and conf["max_requests_jitter"] > 0
    assert conf["accesslog"] is None
    assert conf["forwarded_allow_ips"] == "127.0.0.1,::1"
    if os.path.isdir("/dev/shm"):
        assert conf["worker_tmp_dir"] == "/dev/shm"


def test_environment_overrides(clean_env):
    clean_env.setenv("PORT", "9001")
    clean_env.setenv("GUNICORN_WORKERS", "5")
    clean_env.setenv("GUNICORN_THREADS", "8")
    clean_env.setenv("GUNICORN_TIMEOUT", "60")
    clean_env.setenv("GUNICORN_GRACEFUL_TIMEOUT", "20")
    clean_env.setenv("FORWARDED_ALLOW_IPS", "10.0.0.0/8")
    conf = runpy.run_path(str(CONFIG))
    assert conf["bind"] == "0.0.0.0:9001"
    assert (conf["workers"], conf["threads"], conf["timeout"], conf["graceful_timeout"]) == (5, 8, 60, 20)
    assert conf["forwarded_allow_ips"] == "10.0.0.0/8"
    clean_env.setenv("GUNICORN_BIND", "127.0.0.1:8005")
    assert runpy.run_path(str(CONFIG))["bind"] == "127.0.0.1:8005"


def test_bad_value_stops_with_the_variable_named(clean_env):
    clean_env.setenv("GUNICORN_WORKERS", "many")
    with pytest.raises(SystemExit, match="GUNICORN_WORKERS"):
        runpy.run_path(str(CONFIG))


@pytest.mark.slow
def test_sigterm_finishes_the_in_flight_request(clean_env, tmp_path: Path):
    port = free_port()
    env = {**os.environ, "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": "1",
           "GUNICORN_GRACEFUL_TIMEOUT": "10", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", str(CONFIG), "tests.deploy.slow_app:app"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                assert requests.get(f"http://127.0.0.1:{port}/", timeout=1).text == "done"
                break
            except requests.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.1)
        answers: list[str] = []
        slow = threading.Thread(target=lambda: answers.append(
            requests.get(f"http://127.0.0.1:{port}/slow", timeout=10).text))
        slow.start()
        time.sleep(0.2)  # the request is being handled
        proc.send_signal(signal.SIGTERM)
        slow.join(15)
        assert answers == ["done"]
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _served(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            # A long read timeout: a worker still booting on a busy machine answers late,
            # and a request given up on would still be counted by the server.
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=20).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
        time.sleep(0.1)


def _healthz_count(metrics_text: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics_text.splitlines()
               if line.startswith("portico_http_requests_total{")
               and 'endpoint="/healthz"' in line and 'status="200"' in line)


@pytest.mark.slow
def test_one_scrape_counts_the_requests_of_every_worker(clean_env, tmp_path: Path, redis_url):
    port = free_port()
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"left by an earlier container")
    env = {**os.environ, "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": "2",
           "GUNICORN_THREADS": "1", "PYTHONPATH": str(REPO), "REDIS_URL": redis_url,
           "DATABASE_URL": f"sqlite:///{tmp_path / 'tracking.db'}",
           "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", str(CONFIG),
         "services.tracking.app:create_app()"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _served(port, proc)
        # A new connection each time, and one slow-ish client at a time per worker thread:
        # both workers answer some of them.
        sent = 1
        workers_seen: set[str] = set()
        while sent < 200 and len(workers_seen) < 2:
            for _ in range(10):
                assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).ok
                sent += 1
            workers_seen = {p.name.split("_")[-1] for p in metrics_dir.glob("counter_*.db")
                            if p.name != "counter_999999.db"}
        assert len(workers_seen) == 2, "one worker answered every request"
        assert not (metrics_dir / "counter_999999.db").exists()  # cleared at start-up
        scrape = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert _healthz_count(scrape) == sent
    finally:
        proc.terminate()
        proc.wait(20)

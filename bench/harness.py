"""Shared pieces of ``make bench``: a service under gunicorn on loopback, a bounded
load from wrk (Debian package; a Python fallback when it cannot be installed), and
the figures every table reports: requests/s, p50/p99 latency, requests per
server-CPU-second (from /proc, so the load generator's share of this 2-core
machine does not count) and peak RSS of the server processes.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def process_tree(pid: int) -> list[int]:
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(_children(current))
    return tree


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / CLK_TCK


def peak_rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            match = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
            if match:
                total += int(match.group(1))
    return total / 1024


class Server:
    """One service under gunicorn on a free loopback port."""

    def __init__(self, service: str, env: dict[str, str], *, workers: int = 2, threads: int = 4,
                 app: str | None = None) -> None:
        self.service = service
        self.port = free_port()
        self.env = {**os.environ, **env}
        self.app = app or f"services.{service}.app:create_app()"
        self.workers = workers
        self.threads = threads
        self.process: subprocess.Popen | None = None
        # Kept open for the server's whole life; the path is printed when start-up fails.
        self.log = tempfile.NamedTemporaryFile(prefix=f"bench-{service}-", suffix=".log", delete=False)  # noqa: SIM115

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        cmd = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}",
               "--workers", str(self.workers), "--threads", str(self.threads),
               "--worker-class", "gthread", "--log-level", "warning", self.app]
        self.process = subprocess.Popen(cmd, env=self.env, cwd=ROOT, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"{self.service} did not start; see {self.log.name}")

    def __exit__(self, *exc: object) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)

    def pids(self) -> list[int]:
        assert self.process is not None
        return process_tree(self.process.pid)


@dataclass
class Result:
    name: str
    requests: int
    errors: int
    seconds: float
    cpu_seconds: float
    p50_ms: float
    p99_ms: float
    rss_mib: float
    connections: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def per_cpu_second(self) -> float:
        return self.requests / self.cpu_seconds if self.cpu_seconds else 0.0

    def row(self, target: str = "") -> str:
        return (f"| {self.name} | {self.connections} | {self.requests} | {self.errors} | "
                f"{self.rps:,.0f} | {self.p50_ms:.1f} | {self.p99_ms:.1f} | "
                f"{self.per_cpu_second:,.0f} | {self.rss_mib:.0f} | {target} |")


TABLE_HEAD = ("| endpoint | conns | requests | errors | req/s | p50 ms | p99 ms | "
              "req per server-CPU-s | server RSS MiB | target |\n"
              "|---|---|---|---|---|---|---|---|---|---|")


def ensure_wrk() -> str | None:
    """wrk from Debian's packages; installed on demand when running as root."""
    path = shutil.which("wrk")
    if path or os.geteuid() != 0 or not shutil.which("apt-get"):
        return path
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)
    return shutil.which("wrk")


_LUA = """
wrk.method = "{method}"
wrk.body = {body}
{headers}
local errors = 0
response = function(status, headers, body)
  if status >= 400 then errors = errors + 1 end
end
done = function(summary, latency, requests)
  io.write(string.format("PORTICO p50=%f p99=%f\\n", latency:percentile(50), latency:percentile(99)))
end
"""


def _lua_string(value: str) -> str:
    return "[==[" + value + "]==]"


def run_load(name: str, server: Server, path: str, *, method: str = "GET", body: str = "",
             headers: dict[str, str] | None = None, seconds: float = 10, connections: int = 16,
             threads: int = 2) -> Result:
    """Load ``path`` on ``server`` for ``seconds`` and measure it."""
    url = server.url + path
    # Warm up: caches, JIT-free but lazy imports, connection pools.
    with contextlib.suppress(requests.RequestException):
        for _ in range(20):
            requests.request(method, url, data=body or None, headers=headers, timeout=5)
    pids = server.pids()
    cpu_before = cpu_seconds(pids)
    wrk = ensure_wrk()
    if wrk:
        result = _wrk(wrk, url, method, body, headers or {}, seconds, connections, threads)
    else:
        result = _python_load(url, method, body, headers or {}, seconds, connections)
    requests_done, errors, elapsed, p50, p99 = result
    cpu = cpu_seconds(server.pids()) - cpu_before
    return Result(name, requests_done, errors, elapsed, cpu, p50, p99, peak_rss_mib(server.pids()),
                  connections)


def _wrk(wrk: str, url: str, method: str, body: str, headers: dict[str, str], seconds: float,
         connections: int, threads: int) -> tuple[int, int, float, float, float]:
    header_lines = "\n".join(f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}"
                             for k, v in headers.items())
    script = _LUA.format(method=method, body=_lua_string(body) if body else "nil",
                         headers=header_lines)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    out = subprocess.run([wrk, "-t", str(threads), "-c", str(connections), "-d", f"{int(seconds)}s",
                          "--timeout", "5s", "-s", handle.name, url],
                         capture_output=True, text=True, check=True).stdout
    os.unlink(handle.name)
    total = int(re.search(r"(\d+) requests in ([\d.]+)(\w+)", out).group(1))
    dur_value, unit = re.search(r"requests in ([\d.]+)(\w+)", out).groups()
    elapsed = float(dur_value) * {"s": 1, "ms": 0.001, "m": 60}.get(unit, 1)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(non2xx.group(1)) if non2xx else 0
    if socket_errors:
        errors += sum(int(x) for x in socket_errors.groups())
    p50, p99 = (float(x) / 1000 for x in re.search(r"PORTICO p50=([\d.]+) p99=([\d.]+)", out).groups())
    return total, errors, elapsed, p50, p99


def _python_load(url: str, method: str, body: str, headers: dict[str, str], seconds: float,
                 connections: int) -> tuple[int, int, float, float, float]:
    """Bounded fallback when wrk is not available: one keep-alive session per connection."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    parts = urlsplit(url)
    assert parts.hostname in {"127.0.0.1", "localhost"}, "benchmarks target loopback only"

    def worker() -> None:
        session = requests.Session()
        local, local_errors = [], 0
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            try:
                response = session.request(method, url, data=body or None, headers=headers, timeout=5)
                if response.status_code >= 400:
                    local_errors += 1
            except requests.RequestException:
                local_errors += 1
            local.append(time.perf_counter() - started)
        with lock:
            latencies.extend(local)
            errors[0] += local_errors

    started = time.monotonic()
    pool = [threading.Thread(target=worker) for _ in range(connections)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.monotonic() - started
    latencies.sort()
    p50 = statistics.median(latencies) * 1000 if latencies else 0.0
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else 0.0
    return len(latencies), errors[0], elapsed, p50, p99


def machine_line() -> str:
    model = ""
    with contextlib.suppress(OSError):
        match = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        model = match.group(1) if match else ""
    return f"{os.cpu_count()} cores ({model}), Python {sys.version.split()[0]}"

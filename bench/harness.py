"""Shared pieces of ``make bench``: a service under gunicorn on loopback, a bounded
load from wrk (Debian package; a Python fallback when it cannot be installed), and
the figures every table reports: requests/s, p50/p99 latency, requests per
server-CPU-second (from /proc, so the load generator's share of this 2-core
machine does not count) and peak RSS of the server processes.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests

from services.devtools.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


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

    @property
    def site_url(self) -> str:
        """The same server by host name, as a browser reaches pages that hold WebAuthn
        ceremonies: WebAuthn refuses an IP address as the relying party's id."""
        return f"http://localhost:{self.port}"

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
    """One load's figures. A result made of several ``runs`` reports the median run's
    req/s, p50, p99 and requests per CPU-second (each metric's own median) with the range
    across runs, and the runs' summed requests and errors."""

    name: str
    requests: int
    errors: int
    seconds: float
    cpu_seconds: float
    p50_ms: float
    p99_ms: float
    rss_mib: float
    connections: int
    runs: tuple[Result, ...] = ()

    @classmethod
    def of_runs(cls, runs: list[Result]) -> Result:
        first = runs[0]
        return cls(first.name, sum(r.requests for r in runs), sum(r.errors for r in runs),
                   sum(r.seconds for r in runs), sum(r.cpu_seconds for r in runs),
                   statistics.median(r.p50_ms for r in runs),
                   statistics.median(r.p99_ms for r in runs),
                   max(r.rss_mib for r in runs), first.connections, tuple(runs))

    @property
    def rps(self) -> float:
        if self.runs:
            return statistics.median(r.rps for r in self.runs)
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def per_cpu_second(self) -> float:
        if self.runs:
            return statistics.median(r.per_cpu_second for r in self.runs)
        return self.requests / self.cpu_seconds if self.cpu_seconds else 0.0

    def _spread(self, values: list[float], digits: int) -> str:
        if len(values) < 2:
            return ""
        return f" ({min(values):,.{digits}f}–{max(values):,.{digits}f})"

    def row(self, target: str = "") -> str:
        p99s = [r.p99_ms for r in self.runs]
        per_cpu = [r.per_cpu_second for r in self.runs]
        return (f"| {self.name} | {self.connections} | {self.requests} | {self.errors} | "
                f"{self.rps:,.0f} | {self.p50_ms:.1f} | {self.p99_ms:.1f}"
                f"{self._spread(p99s, 1)} | {self.per_cpu_second:,.0f}"
                f"{self._spread(per_cpu, 0)} | {self.rss_mib:.0f} | {target} |")


# Each measured row is this many runs of a module's SECONDS, reported as their median.
REPEATS = 3


def runs_text(seconds: float) -> str:
    """How the rows of ``run_load(..., repeats=REPEATS)`` were measured, for a setup line."""
    return f"median of {REPEATS} runs of {seconds:g} s per row, the range over the runs in brackets"


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
done = function(summary, latency, requests)
  io.write(string.format("PORTICO p50=%f p99=%f\\n", latency:percentile(50), latency:percentile(99)))
end
"""


def _lua_string(value: str) -> str:
    return "[==[" + value + "]==]"


@dataclass(frozen=True)
class Call:
    """One request of a varied load: ``run_load(..., calls=[Call(...), ...])``."""

    path: str
    method: str = "GET"
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)


def run_load(name: str, server: Server, path: str, *, method: str = "GET", body: str = "",
             headers: dict[str, str] | None = None, seconds: float = 10, connections: int = 16,
             threads: int = 2, calls: list[Call] | None = None, once: bool = False,
             warmup: int = 20, extra_pids: Callable[[], list[int]] | None = None,
             repeats: int = 1, think_ms: int = 0) -> Result:
    """Load ``path`` on ``server`` for ``seconds`` and measure it; with ``repeats`` that
    many times, reported as their median (``Result.of_runs``): on two cores shared with
    the load generator a single run can land in a slow spell of the machine.

    With ``calls`` each request is one of them (picked at random, or with ``once`` each
    used at most once, in order, for single-use credentials such as refresh tokens; the
    warm-up then uses none of them, and each repeat its own share). ``extra_pids`` adds
    processes whose CPU counts as the server's (e.g. a second service the endpoint calls).
    ``think_ms``: each connection waits that long after an answer before its next request
    (wrk's ``delay``), a paced load instead of a saturating one; latencies exclude the wait.
    """
    url = server.url + path
    # Warm up: caches, lazy imports, connection pools.
    with contextlib.suppress(requests.RequestException):
        for i in range(0 if once else warmup):
            call = calls[i % len(calls)] if calls else Call(path, method, body, headers or {})
            requests.request(call.method, server.url + call.path, data=call.body or None,
                             headers=call.headers, timeout=5)
    # Then a short burst at full concurrency, so every worker thread has served requests
    # (the first measured row was otherwise paying the servers' start-up).
    warm_wrk = ensure_wrk()
    if warm_wrk and not once:
        _wrk(warm_wrk, url, method, body, headers or {}, 2, connections, threads, calls, False)

    def pids() -> list[int]:
        return server.pids() + (extra_pids() if extra_pids else [])

    runs = []
    for k in range(repeats):
        share = calls[k * len(calls) // repeats:(k + 1) * len(calls) // repeats] \
            if calls and once else calls
        runs.append(_measure(name, server, url, method, body, headers or {}, seconds,
                             connections, threads, share, once, pids, think_ms))
    return runs[0] if repeats == 1 else Result.of_runs(runs)


def _measure(name: str, server: Server, url: str, method: str, body: str,
             headers: dict[str, str], seconds: float, connections: int, threads: int,
             calls: list[Call] | None, once: bool, pids: Callable[[], list[int]],
             think_ms: int = 0) -> Result:
    cpu_before = cpu_seconds(pids())
    wrk = ensure_wrk()
    if wrk:
        result = _wrk(wrk, url, method, body, headers, seconds, connections, threads,
                      calls, once, think_ms)
    elif think_ms:
        raise RuntimeError("a paced load (think_ms) needs wrk")
    else:
        result = _python_load(url, method, body, headers, seconds, connections, calls,
                              once, server.url)
    requests_done, errors, elapsed, p50, p99 = result
    cpu = cpu_seconds(pids()) - cpu_before
    return Result(name, requests_done, errors, elapsed, cpu, p50, p99, peak_rss_mib(pids()),
                  connections)


_LUA_CALLS = """
local reqs = {{}}
local idx = 0
local stride = {threads}
local once = {once}
local next_tid = 0
setup = function(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
end
init = function(args)
  for line in io.lines({path}) do
    local fields = {{}}
    for f in (line .. "\t"):gmatch("([^\t]*)\t") do table.insert(fields, f) end
    local headers = {{}}
    for i = 4, #fields do
      local k, v = fields[i]:match("^([^:]+): (.*)$")
      if k then headers[k] = v end
    end
    local body = fields[3]
    if body == "" then body = nil end
    table.insert(reqs, wrk.format(fields[1], fields[2], headers, body))
  end
  idx = tid
  math.randomseed(os.time() + tid * 7919)
end
request = function()
  if once then
    local r = reqs[(idx % #reqs) + 1]
    idx = idx + stride
    return r
  end
  return reqs[math.random(#reqs)]
end
done = function(summary, latency, requests)
  io.write(string.format("PORTICO p50=%f p99=%f\\n", latency:percentile(50), latency:percentile(99)))
end
"""


def _calls_file(calls: list[Call]) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False) as handle:
        for call in calls:
            fields = [call.method, call.path, call.body,
                      *(f"{k}: {v}" for k, v in call.headers.items())]
            assert not any("\t" in f or "\n" in f for f in fields), "tabs/newlines in a call"
            handle.write("\t".join(fields) + "\n")
    return handle.name


def _wrk(wrk: str, url: str, method: str, body: str, headers: dict[str, str], seconds: float,
         connections: int, threads: int, calls: list[Call] | None = None,
         once: bool = False, think_ms: int = 0) -> tuple[int, int, float, float, float]:
    data_file = None
    if calls:
        data_file = _calls_file(calls)
        script = _LUA_CALLS.format(threads=threads, once="true" if once else "false",
                                   path=_lua_string(data_file))
    else:
        header_lines = "\n".join(f"wrk.headers[ {_lua_string(k)} ] = {_lua_string(v)}"
                                 for k, v in headers.items())
        script = _LUA.format(method=method, body=_lua_string(body) if body else "nil",
                             headers=header_lines)
    if think_ms:
        script += f"\ndelay = function() return {int(think_ms)} end\n"  # wrk counts whole ms
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        completed = subprocess.run([wrk, "-t", str(threads), "-c", str(connections), "-d",
                                    f"{int(seconds)}s", "--timeout", "5s", "-s", handle.name,
                                    url], capture_output=True, text=True, check=True)
        out = completed.stdout
    finally:
        os.unlink(handle.name)
        if data_file:
            os.unlink(data_file)
    if "PORTICO p50=" not in out:
        raise RuntimeError(f"wrk gave no figures:\n{out}\n{completed.stderr}")
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
                 connections: int, calls: list[Call] | None = None, once: bool = False,
                 base_url: str = "") -> tuple[int, int, float, float, float]:
    """Bounded fallback when wrk is not available: one keep-alive session per connection."""
    import itertools
    import random

    parts = urlsplit(url)
    assert parts.hostname in {"127.0.0.1", "localhost"}, "benchmarks target loopback only"
    sequence = itertools.cycle(calls) if calls and once else None
    lock = threading.Lock()

    def pick() -> Call:
        if not calls:
            return Call(url[len(base_url):] if base_url else "", method, body, headers)
        if sequence is not None:
            with lock:
                return next(sequence)
        return random.choice(calls)

    def one(session: requests.Session) -> bool:
        call = pick()
        target = (base_url + call.path) if calls else url
        response = session.request(call.method, target, data=call.body or None,
                                   headers=call.headers, timeout=5)
        return response.status_code < 400

    return run_flow_raw(one, seconds, connections)


def run_flow_raw(step: Callable[[requests.Session], bool], seconds: float,
                 connections: int) -> tuple[int, int, float, float, float]:
    """Call ``step(session)`` from ``connections`` threads for ``seconds``; each call is one
    measured operation (True: it succeeded). Returns (done, errors, elapsed, p50, p99)."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker() -> None:
        session = requests.Session()
        local, local_errors = [], 0
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            try:
                if not step(session):
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
    p99 = latencies[max(int(len(latencies) * 0.99) - 1, 0)] * 1000 if latencies else 0.0
    return len(latencies), errors[0], elapsed, p50, p99


def run_flow(name: str, server: Server, step: Callable[[requests.Session], bool], *,
             seconds: float = 10, connections: int = 4,
             extra_pids: Callable[[], list[int]] | None = None) -> Result:
    """Like :func:`run_load` for a multi-request operation driven from Python (a login
    flow): each ``step`` call counts as one operation."""

    def pids() -> list[int]:
        return server.pids() + (extra_pids() if extra_pids else [])

    cpu_before = cpu_seconds(pids())
    done, errors, elapsed, p50, p99 = run_flow_raw(step, seconds, connections)
    cpu = cpu_seconds(pids()) - cpu_before
    return Result(name, done, errors, elapsed, cpu, p50, p99, peak_rss_mib(pids()), connections)


def machine_line() -> str:
    model = ""
    with contextlib.suppress(OSError):
        match = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        model = match.group(1) if match else ""
    return f"{os.cpu_count()} cores ({model}), Python {sys.version.split()[0]}"


def verdict(result: Result, *, per_cpu: float | None = None, p99_ms: float | None = None,
            factor: int = 1, unit: str = "") -> str:
    """The target column: what was asked and whether this run met it. ``factor`` turns
    requests into the unit the target counts (e.g. 50 decisions per batch request)."""
    asked, met = [], True
    if per_cpu is not None:
        measured = result.per_cpu_second * factor
        asked.append(f">= {per_cpu:,.0f}{' ' + unit if unit else ''}/CPU-s"
                     + (f" (measured {measured:,.0f})" if factor != 1 else ""))
        met &= measured >= per_cpu
    if p99_ms is not None:
        asked.append(f"p99 <= {p99_ms:g} ms")
        met &= result.p99_ms <= p99_ms
    if result.errors:
        met = False
    return ", ".join(asked) + (": met" if met else ": **missed**")


def load_average() -> str:
    """The 1-minute load average: other work on this machine skews every figure."""
    with contextlib.suppress(OSError):
        return Path("/proc/loadavg").read_text().split()[0]
    return "?"


# The issue's own machine: "a bare Flask JSON endpoint manages ~1,800 per
# server-CPU-second here". The targets were set against it.
ISSUE_YARDSTICK_PER_CPU = 1800
# And: "a bare authlib + Flask token endpoint issues ~1,075 ES256 tokens per
# server-CPU-second" (the OIDC issue), the yardstick of the token endpoints.
ISSUE_TOKEN_YARDSTICK_PER_CPU = 1075


def bare_flask(name: str, workers: int, threads: int, body: str, *, seconds: float,
               repeats: int, think_ms: int = 0) -> Result:
    """The yardstick (``bench/reference_app.py``) under the same gunicorn shape and load."""
    with Server("reference", {}, workers=workers, threads=threads,
                app="bench.reference_app:app") as server:
        return run_load(name, server, "/check",
                        method="POST", body=body, headers={"Content-Type": "application/json"},
                        seconds=seconds, repeats=repeats, think_ms=think_ms)


def reference_token_server(workers: int, threads: int) -> Server:
    """The second yardstick's server (``bench/reference_token_app.py``: authlib's
    client_credentials alone, ES256) in the given gunicorn shape."""
    return Server("reference-token", {}, workers=workers, threads=threads,
                  app="bench.reference_token_app:app")


def reference_token_call() -> Call:
    """One client_credentials request to :func:`reference_token_server`."""
    from bench.reference_token_app import CLIENT_ID, CLIENT_SECRET

    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    return Call("/token", "POST", "grant_type=client_credentials",
                {"Authorization": "Basic " + basic,
                 "Content-Type": "application/x-www-form-urlencoded"})


def scaled_by_rounds(yardstick: Result, rows: list[tuple[str, Result, float]], *,
                     there: int, what: str) -> str:
    """Like :func:`scaled_to_issue_machine`, for rows measured in rounds with the
    yardstick. A slow spell of the machine only ever lowers a run's figure, and spells
    last a few seconds, so they fall on a row's run or on the yardstick's unevenly. The
    estimate is the ratio of the best runs (each the least slowed of its kind); the range
    of the ratios round by round is given beside it."""
    yard_runs = yardstick.runs or (yardstick,)
    best_yard = max(run.per_cpu_second for run in yard_runs)
    parts = []
    for name, result, target in rows:
        runs = result.runs or (result,)
        best = there * max(run.per_cpu_second for run in runs) / best_yard
        rounds = sorted(there * run.per_cpu_second / yard.per_cpu_second
                        for run, yard in zip(runs, yard_runs, strict=True))
        parts.append(f"{name} ≈ {best:,.0f} (round by round {rounds[0]:,.0f}–{rounds[-1]:,.0f}; "
                     f"target {target:,.0f}: {'met' if best >= target else 'missed'})")
    return (f"Scaled to the issue's machine by the best runs ({what} ~{there:,}/CPU-s there, "
            f"{best_yard:,.0f} in its best run here; a row's best run over that), per "
            "server-CPU-second: " + "; ".join(parts) + ".")


def scaled_to_issue_machine(yardstick: Result, rows: list[tuple[str, float, float]], *,
                            there: int = ISSUE_YARDSTICK_PER_CPU,
                            what: str = "bare Flask") -> str:
    """A note restating ``rows`` (name, per server-CPU-second here, target) on the issue's
    machine, by the ratio of a yardstick's figure there (``there``) and here: the verdicts
    above are absolute, and a faster machine meets an absolute target that the code would
    miss where it was set."""
    here = yardstick.per_cpu_second
    scale = there / here
    parts = [f"{name} ≈ {per_cpu * scale:,.0f} (target {target:,.0f}: "
             f"{'met' if per_cpu * scale >= target else 'missed'})"
             for name, per_cpu, target in rows]
    return (f"Scaled to the issue's machine ({what} ~{there:,}/CPU-s there, {here:,.0f} in "
            f"this run, × {scale:.2f}), per server-CPU-second: " + "; ".join(parts) + ".")

"""Notifier (issue 8, "Performance"): notifications through Redis Streams to an aiosmtpd
sink on loopback: emails/s sustained, p99 from publish to SMTP acceptance, lost and
duplicated.

The real worker (``iamctl worker notifier`` = ``python -m services.cli worker notifier``,
its consumer group and SMTP sender) runs as a subprocess against PostgreSQL (SQLite when
it does not answer) and the machine's Redis. The sink is another process
(``python -m bench.notifier_bench sink PORT FILE``): it accepts every message and
appends "<Message-ID> <arrival time>" to FILE.

Two rows: 1,000 events published at a steady 250 events/s (latency under a sustained
load the target rate can carry), then 1,000 more in one burst (the most it can carry).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from redis import exceptions as redis_errors

from bench.fixtures import Backends
from bench.harness import ROOT, cpu_seconds, free_port, load_average, process_tree
from services.common.config import load
from services.notifier.settings import NotifierSettings

TITLE = "Notifier"
EVENTS = 1000
PACED_RATE = 250.0          # events/s offered in the first row
WINDOW_SECONDS = 30         # each row's bound


def _users(prefix: str) -> list[str]:
    return [f"{prefix}-{i:04d}" for i in range(EVENTS)]


def _seed_read_model(url: str, users: list[str]) -> None:
    """The recipients, as identity's activation events would have left them."""
    from sqlalchemy import insert

    from services.common.db import Database
    from services.notifier.models import Recipient

    db = Database(url)
    as_of = datetime.now(UTC) - timedelta(days=1)
    with db.transaction() as session:
        session.execute(insert(Recipient), [
            {"user_id": u, "email": f"{u}@example.com", "given_name": f"Name {u}",
             "preferred_language": "en" if i % 3 else "es", "status_changes": True,
             "as_of": as_of} for i, u in enumerate(users)])
    db.dispose()


def _envelope(user: str) -> str:
    from services.common.events import Envelope

    return Envelope.new("identity.password.changed", "identity",
                        {"user_id": user, "email": f"{user}@example.com",
                         "given_name": f"Name {user}", "via": "profile"},
                        subject=user).to_json()


def _arrivals(path: Path) -> list[tuple[str, float]]:
    if not path.exists():
        return []
    found = []
    for line in path.read_text().splitlines():
        message_id, _, at = line.rpartition(" ")
        if message_id:
            found.append((message_id, float(at)))
    return found


def _event_of(message_id: str) -> str:
    return message_id.strip("<>").split(".", 1)[0]


def _phase(backends: Backends, stream: str, users: list[str], sink_file: Path, *,
           rate: float | None, pids: list[int]) -> tuple[str, bool]:
    """Publish one event per user (paced at ``rate`` or all at once); the table row."""
    published: dict[str, float] = {}
    before = len(_arrivals(sink_file))
    cpu_before = cpu_seconds(pids)
    t0 = time.time()
    payloads = [_envelope(u) for u in users]
    from services.common.events import Envelope

    if rate is None:
        pipe = backends.redis.pipeline(transaction=False)
        for payload in payloads:
            pipe.xadd(stream, {"envelope": payload})
        stamp = time.time()
        pipe.execute()
        published = {Envelope.from_json(p).id: stamp for p in payloads}
    else:
        for i, payload in enumerate(payloads):
            due = t0 + i / rate
            pause = due - time.time()
            if pause > 0:
                time.sleep(pause)
            published[Envelope.from_json(payload).id] = time.time()
            backends.redis.xadd(stream, {"envelope": payload})
    deadline = time.time() + WINDOW_SECONDS
    while time.time() < deadline:
        if len(_arrivals(sink_file)) - before >= len(payloads):
            break
        time.sleep(0.05)
    time.sleep(0.5)  # anything sent twice would arrive now
    arrivals = [(_event_of(m), at) for m, at in _arrivals(sink_file)[before:]]
    cpu = cpu_seconds(pids) - cpu_before
    mine = [(e, at) for e, at in arrivals if e in published]
    seen: dict[str, int] = {}
    for event_id, _ in mine:
        seen[event_id] = seen.get(event_id, 0) + 1
    lost = sum(1 for e in published if e not in seen)
    duplicated = sum(n - 1 for n in seen.values() if n > 1)
    latencies = sorted(at - published[e] for e, at in mine)
    first_publish = min(published.values())
    last = max((at for _, at in mine), default=first_publish)
    elapsed = last - first_publish
    rate_out = len(seen) / elapsed if elapsed > 0 else 0.0
    p50 = statistics.median(latencies) * 1000 if latencies else float("nan")
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000 \
        if latencies else float("nan")
    name = (f"{len(users):,} events paced at {rate:.0f}/s" if rate is not None
            else f"{len(users):,} events in one burst")
    met = rate_out >= 200 and lost == 0 and duplicated == 0 and (rate is None or p99 <= 1000)
    target = (">= 200 emails/s, p99 <= 1 s, 0 lost" if rate is not None
              else ">= 200 emails/s, 0 lost (p99 here is queueing time)")
    row = (f"| {name} | {len(seen):,} | {lost} | {duplicated} | {rate_out:,.0f} | "
           f"{p50:,.0f} | {p99:,.0f} | {cpu:.1f} | {target}: "
           + ("met" if met else "**missed**") + " |")
    return row, met


def run() -> str:
    started = time.monotonic()
    load_before = load_average()
    with Backends() as backends:
        url = backends.database("notifier")
        paced_users, burst_users = _users("bench-paced"), _users("bench-burst")
        _seed_read_model(url, paced_users + burst_users)
        sink_file = Path(backends.tmp) / "arrivals.txt"
        port = free_port()
        sink = subprocess.Popen([sys.executable, "-m", "bench.notifier_bench", "sink", str(port),
                                 str(sink_file)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert sink.stdout is not None
        if sink.stdout.readline().strip() != "ready":
            raise RuntimeError("the SMTP sink did not start")
        env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": backends.redis_url,
               "REDIS_NAMESPACE": backends.namespace, "SMTP_HOST": "127.0.0.1",
               "SMTP_PORT": str(port), "LOG_LEVEL": "WARNING"}
        log_path = Path(backends.tmp) / "worker.log"
        with open(log_path, "w") as log_file:
            worker = subprocess.Popen([sys.executable, "-m", "services.cli", "worker", "notifier"],
                                      cwd=ROOT, env=env, stdout=log_file, stderr=log_file)
        stream = f"{backends.namespace}.events.identity"
        try:
            _wait_for_group(backends, stream, worker, log_path)
            pids = process_tree(worker.pid)
            paced, _ = _phase(backends, stream, paced_users, sink_file, rate=PACED_RATE, pids=pids)
            burst, _ = _phase(backends, stream, burst_users, sink_file, rate=None, pids=pids)
        finally:
            for proc in (worker, sink):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in (worker, sink):
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        errors = sum(1 for line in log_path.read_text().splitlines() if '"ERROR"' in line)
        describe = backends.describe
    head = ("| load | emails accepted | not accepted in the window | duplicated | emails/s | "
            "p50 ms | p99 ms | "
            "worker CPU s | target |\n|---|---|---|---|---|---|---|---|---|")
    setup = (f"`iamctl worker notifier` as a subprocess (its outbox relay, its consumer group "
             f"on the identity stream and {load(NotifierSettings, {}).senders} SMTP sender threads (NOTIFY_SENDERS), each claiming up to "
             f"{load(NotifierSettings, {}).batch_size} messages a round (NOTIFY_BATCH_SIZE default) "
             "and sending them over one SMTP connection; default settings throughout), "
             f"{describe}; an aiosmtpd sink in its own process on loopback recording each "
             "Message-ID's arrival time. Each event is `identity.password.changed` for a user "
             f"already in the notifier's read model ({2 * EVENTS:,} seeded), one email each. "
             "Latency: from the XADD of the event to the sink's acceptance of its email "
             "(Message-ID → event id). emails/s: distinct emails accepted divided by the time "
             "from the first publish to the last acceptance. Not accepted in the window: "
             f"published events without an email {WINDOW_SECONDS} s after publishing (still "
             "queued, not lost, unless the row says otherwise); duplicated = extra copies of "
             "a Message-ID.")
    notes = [f"Worker log lines at ERROR: {errors}.",
             f"Whole module: {time.monotonic() - started:.0f} s; 1-minute load average "
             f"{load_before} at the start, {load_average()} at the end (2 cores: above ~2 "
             "other work shared the machine)."]
    return "\n".join([setup, "", head, paced, burst, "", *(f"* {n}" for n in notes)])


def _wait_for_group(backends: Backends, stream: str, worker: subprocess.Popen,
                    log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited: {log_path.read_text()[-2000:]}")
        try:
            if any(g["name"] in (b"notifier", "notifier")
                   for g in backends.redis.xinfo_groups(stream)):
                return
        except redis_errors.ResponseError:  # the stream does not exist yet
            time.sleep(0.1)
            continue
        time.sleep(0.1)
    raise RuntimeError("the worker did not create its consumer group")


def sink(port: int, path: str) -> int:
    """An aiosmtpd server accepting everything; one "<Message-ID> <time>" line each."""
    import logging
    import re
    import threading

    from aiosmtpd.controller import Controller

    logging.getLogger("mail.log").setLevel(logging.WARNING)
    pattern = re.compile(rb"^message-id:\s*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)
    out = open(path, "a", buffering=1)  # noqa: SIM115 - open for the process's life

    class Recorder:
        async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd hook
            content = envelope.original_content or envelope.content
            head = content.split(b"\r\n\r\n", 1)[0]
            found = pattern.search(head)
            out.write(f"{found.group(1).decode() if found else '<none>'} {time.time():.6f}\n")
            return "250 2.0.0 Message accepted"

    controller = Controller(Recorder(), hostname="127.0.0.1", port=port)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    controller.stop()
    out.close()
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "sink":
        sys.exit(sink(int(sys.argv[2]), sys.argv[3]))
    sys.exit(f"usage: {sys.argv[0]} sink PORT FILE")

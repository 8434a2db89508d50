"""free_port: below the ephemeral range, free, and never the same twice."""

from __future__ import annotations

import itertools
import socket
from pathlib import Path

from services.devtools import ports


def test_ports_are_below_the_ephemeral_range_and_distinct():
    start = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    given = [ports.free_port() for _ in range(50)]
    assert len(set(given)) == 50
    assert all(20_000 <= port < start for port in given)


def test_a_port_something_listens_on_or_already_given_is_skipped(monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        given = ports.free_port()
        tried = itertools.chain([busy, given], itertools.count(20_123))
        monkeypatch.setattr(ports.random, "randint", lambda low, high: next(tried))
        answer = ports.free_port()
    assert answer not in (busy, given)

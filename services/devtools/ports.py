"""Free loopback ports for processes a test or benchmark starts and then connects to.

Why not ``bind(("127.0.0.1", 0))``: the kernel hands that out from its ephemeral range,
the same range every outgoing connection's local port comes from. Between choosing a
port and the server binding it, a connection to PostgreSQL or Redis (of the very
process being started, or of anything else on the machine) can take it, and the server
then fails with "address in use". Ports below that range are never handed to outgoing
connections, so only another server could take one.
"""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

_LOWEST = 20_000
_given: set[int] = set()
_lock = threading.Lock()


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def free_port() -> int:
    """A loopback TCP port below the ephemeral range that nothing listens on now and that
    this process has not handed out before."""
    highest = max(_LOWEST + 1_000, _ephemeral_start() - 1)
    with _lock:
        for _ in range(200):
            port = random.randint(_LOWEST, highest)
            if port in _given:
                continue
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _given.add(port)
            return port
    raise RuntimeError(f"no free port between {_LOWEST} and {highest}")

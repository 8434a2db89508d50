"""Liveness/readiness probe of a worker container (workers serve no HTTP).

The worker touches ``$HEARTBEAT_FILE`` every few seconds while its relay and consumer
threads are alive; this exits 0 when the file was touched within ``--max-age``
seconds, 1 otherwise (missing file, stale file). Standard library only: it runs as
a fresh process on every probe.

    python /app/deploy/docker/worker_probe.py --max-age 60
"""

from __future__ import annotations

import argparse
import os
import sys
import time

DEFAULT_FILE = "/tmp/portico-worker-heartbeat"  # noqa: S108 - the pod's own emptyDir


def heartbeat_age(path: str, now: float | None = None) -> float | None:
    """Seconds since ``path`` was last touched, or None when it does not exist."""
    try:
        mtime = os.stat(path).st_mtime
    except FileNotFoundError:
        return None
    return (time.time() if now is None else now) - mtime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", default=os.environ.get("HEARTBEAT_FILE") or DEFAULT_FILE)
    parser.add_argument("--max-age", type=float, default=60.0, help="seconds (default 60)")
    args = parser.parse_args(argv)
    age = heartbeat_age(args.file)
    if age is None:
        print(f"no heartbeat file at {args.file}", file=sys.stderr)
        return 1
    if age > args.max_age:
        print(f"heartbeat is {age:.0f}s old (max {args.max_age:.0f}s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""prometheus_client's multi-process mode, as every Portico process meets it."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter


def ensure_multiprocess_dir(directory: str) -> None:
    """Make ``directory`` (``PROMETHEUS_MULTIPROC_DIR``) if it is set and missing.

    In multi-process mode (the Kubernetes ConfigMap sets it for every pod, for gunicorn's
    workers) prometheus_client writes each process's samples to files in that directory
    and raises on the process's first metric if it does not exist: a worker pod, whose
    /tmp is an empty volume, crashed at start until this ran in ``iamctl`` too."""
    if directory:
        os.makedirs(directory, exist_ok=True)


# One counter per (registry, name): several loops of one worker (the notifier's senders,
# a relay and a consumer) count into one registry, which refuses a name registered twice.
_COUNTERS: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, Counter]] = (
    weakref.WeakKeyDictionary()
)
_LOCK = threading.Lock()


def counter(registry: CollectorRegistry | None, name: str, documentation: str,
            labelnames: Sequence[str] = ()) -> Counter:
    """The counter ``name`` of ``registry``, made on first use (``registry`` None: one
    of its own, which no scrape reads: a loop run without a worker's registry)."""
    registry = registry or CollectorRegistry()
    with _LOCK:
        counters = _COUNTERS.setdefault(registry, {})
        found = counters.get(name)
        if found is None:
            found = counters[name] = Counter(name, documentation, list(labelnames),
                                             registry=registry)
        return found

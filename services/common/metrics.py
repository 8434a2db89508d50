"""prometheus_client's multi-process mode, as every Portico process meets it."""

from __future__ import annotations

import os


def ensure_multiprocess_dir() -> None:
    """Make ``PROMETHEUS_MULTIPROC_DIR`` if it is set and missing.

    In multi-process mode (the Kubernetes ConfigMap sets it for every pod, for gunicorn's
    workers) prometheus_client writes each process's samples to files in that directory
    and raises on the process's first metric if it does not exist: a worker pod, whose
    /tmp is an empty volume, crashed at start until this ran in ``iamctl`` too."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)

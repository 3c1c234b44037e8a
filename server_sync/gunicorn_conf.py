"""gunicorn settings for metrics under several workers: ``-c python:server_sync.gunicorn_conf``.

With ``PROMETHEUS_MULTIPROC_DIR`` set, each worker keeps its metric values in files
there (see server_sync.metrics). The directory must start empty, or counts of an
earlier run would be added in: the master empties it before forking the first
worker. When a worker exits its counts stay (they happened), and its live gauges
are dropped.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prometheus_client import multiprocess

# Not imported from server_sync.metrics: importing it would make metric files in the master.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def on_starting(server: Any) -> None:
    """Empty PROMETHEUS_MULTIPROC_DIR (creating it if need be) before any worker starts."""
    folder = os.environ.get(MULTIPROC_ENV)
    if not folder:
        return
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()


def child_exit(server: Any, worker: Any) -> None:
    """Drop an exited worker's live gauges (its counters stay in the sums)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]

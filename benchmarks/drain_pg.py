"""2b. The end-to-end drain with the server on PostgreSQL: ``drain_pg_vs_naive``.

The same drain as benchmarks/drain.py (same entries, same naive uploader on SQLite as
the baseline), with ``fieldsync-server serve`` on PostgreSQL in a scratch schema of
its own (created, migrated and dropped here). Skipped without a PostgreSQL URL
(``FIELDSYNC_BENCH_POSTGRES_URL`` or ``FIELDSYNC_TEST_POSTGRES_URL``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simulations.procs import scratch_schema

from . import drain
from ._common import Sizes

#: The figures of the SQLite drain this one reports, under a ``_pg`` name.
RENAMED = {
    "drain_vs_naive": "drain_pg_vs_naive",
    "drain_s": "drain_pg_s",
    "naive_drain_s": "naive_drain_pg_run_s",
    "drain_entries_per_s": "drain_pg_entries_per_s",
    "bytes_per_entry": "drain_pg_bytes_per_entry",
}


def run(sizes: Sizes, workdir: Path | None = None) -> dict[str, Any]:
    """drain_pg_vs_naive and the absolute figures behind it; nothing without PostgreSQL."""
    if not sizes.postgres_url:
        return {}
    with scratch_schema(sizes.postgres_url, prefix="fs_bench_drain") as url:
        figures = drain.run(sizes, workdir, database_url=url)
    return {new: figures[old] for old, new in RENAMED.items()}

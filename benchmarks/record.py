"""1. Durable record: ``record()`` and a 100-entry ``transaction()`` versus plain sqlite3.

The baseline is stdlib sqlite3, unencrypted, WAL, ``synchronous=FULL``, inserting the
same canonical-JSON payload, one row per transaction (or 100 rows in one). Both sides
write to files in the same directory, interleaved A B A B.
"""

from __future__ import annotations

import json
import random
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from client_sync import OutgoingBatch, SyncClient
from protocol import Ack

from ._common import KEY, SEED, Sizes, customer_fields, interleave, median, paired_ratio, percentile


class NoChannel:
    """A channel that is never used: these benchmarks only record."""

    name = "none"
    metered = False

    def send(self, batch: OutgoingBatch) -> Ack:
        """Never called."""
        raise AssertionError("the record benchmark does not send")


def run(sizes: Sizes, workdir: Path | None = None) -> dict[str, Any]:
    """record_vs_sqlite, tx100_vs_sqlite, record p50/p99 (ms)."""
    rng = random.Random(SEED)
    payloads = [customer_fields(i, rng) for i in range(max(sizes.record_n, 100))]
    with tempfile.TemporaryDirectory(dir=workdir, prefix="fs-bench-record-") as tmp:
        base = Path(tmp)
        client = SyncClient(
            base / "outbox.db", KEY, device_id="bench-record", channels=[NoChannel()]
        )
        plain = _plain_sqlite(base / "plain.db")
        latencies: list[float] = []
        try:

            def ours_one(_: int) -> float:
                start = time.perf_counter()
                for i in range(sizes.record_n):
                    t0 = time.perf_counter()
                    client.record("customers", f"c-{i}", payloads[i])
                    latencies.append(time.perf_counter() - t0)
                return time.perf_counter() - start

            def plain_one(_: int) -> float:
                start = time.perf_counter()
                for i in range(sizes.record_n):
                    with plain:
                        plain.execute(
                            "insert into entries(payload) values (?)", (json.dumps(payloads[i]),)
                        )
                return time.perf_counter() - start

            def ours_tx(_: int) -> float:
                start = time.perf_counter()
                for _t in range(sizes.tx100_n):
                    with client.transaction():
                        for i in range(100):
                            client.record("customers", f"c-{i}", payloads[i])
                return time.perf_counter() - start

            def plain_tx(_: int) -> float:
                start = time.perf_counter()
                for _t in range(sizes.tx100_n):
                    with plain:
                        for i in range(100):
                            plain.execute(
                                "insert into entries(payload) values (?)",
                                (json.dumps(payloads[i]),),
                            )
                return time.perf_counter() - start

            # Warm both files (page cache, compiled statements) before measuring.
            ours_one(0)
            plain_one(0)
            latencies.clear()
            one_ours, one_plain = interleave(sizes.repeats, ours_one, plain_one)
            tx_ours, tx_plain = interleave(sizes.repeats, ours_tx, plain_tx)
        finally:
            client.close()
            plain.close()
    return {
        # Throughput ratio: sqlite time / our time (1.0 = as fast as plain sqlite3).
        "record_vs_sqlite": paired_ratio(one_plain, one_ours),
        "tx100_vs_sqlite": paired_ratio(tx_plain, tx_ours),
        "record_p50_ms": percentile(latencies, 50) * 1000,
        "record_p99_ms": percentile(latencies, 99) * 1000,
        "record_per_s": sizes.record_n / median(one_ours),
        "sqlite_record_per_s": sizes.record_n / median(one_plain),
        "tx100_per_s": sizes.tx100_n / median(tx_ours),
        "sqlite_tx100_per_s": sizes.tx100_n / median(tx_plain),
    }


def _plain_sqlite(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("pragma journal_mode = wal")
    conn.execute("pragma synchronous = full")
    conn.execute("create table entries (id integer primary key, payload text not null)")
    # ``with conn`` commits: give it a transaction to commit (autocommit mode otherwise).
    conn.isolation_level = "DEFERRED"
    return conn

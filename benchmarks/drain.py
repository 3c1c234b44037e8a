"""2. End-to-end drain: an outbox that was offline all morning, then the server is reachable.

fieldsync: ``sync_now()`` against ``fieldsync-server serve`` (waitress, SQLite).
Naive: ``benchmarks.naive`` under the same waitress server. Both get the same
entries (the same canonical entry dicts), both count every byte of both directions
(request and status lines, headers, bodies) and every TCP connection opened
(``connections_per_10k_entries``: 1 when the connection is kept alive for the whole
drain, one per batch when it is not). Each entry was recorded as its own transaction
(setup, not measured), so the server judges 500 transactions per batch, as it would
after a morning of taps.
"""

from __future__ import annotations

import dataclasses
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from client_sync import HttpChannel, SyncClient
from protocol import Entry
from simulations.procs import enrol

from . import naive
from ._common import KEY, SEED, Sizes, customer_fields, median, paired_ratio
from ._procs import CountingTransport, fieldsync_server, naive_server

#: Connections are reported per this many entries drained.
PER_10K = 10_000


def run(
    sizes: Sizes, workdir: Path | None = None, database_url: str | None = None
) -> dict[str, Any]:
    """drain_vs_naive, bytes_per_entry_vs_naive, and the absolute figures behind them.

    The server uses ``database_url`` (benchmarks/drain_pg.py: PostgreSQL) or SQLite.
    """
    n = sizes.drain_entries
    with tempfile.TemporaryDirectory(dir=workdir, prefix="fs-bench-drain-") as tmp:
        base = Path(tmp)
        db_url = database_url or f"sqlite:///{base / 'server.db'}"
        ours_bytes: list[float] = []
        naive_bytes: list[float] = []
        ours_conns: list[float] = []
        naive_conns: list[float] = []
        with fieldsync_server(db_url) as url, naive_server(base / "naive-server.db") as naive_url:

            def ours(rep: int) -> float:
                device = enrol(f"drain-{rep}", db_url)
                path = base / f"outbox-{rep}.db"
                transport = CountingTransport()
                channel = HttpChannel("wifi", url, device.token, transport=transport)
                with SyncClient(path, KEY, device_id=device.device_id, channels=[channel]) as c:
                    _fill(c, n, rep)
                    _offline_entries[rep] = [
                        dataclasses.asdict(_as_entry(e, device.device_id)) for e in _all_entries(c)
                    ]
                    start = time.perf_counter()
                    report = c.sync_now()
                    elapsed = time.perf_counter() - start
                    if report.remaining or c.stats()["acked"] != n:
                        raise RuntimeError(f"fieldsync drain left entries: {report}")
                ours_bytes.append((transport.sent + transport.received) / n)
                ours_conns.append(transport.connections * PER_10K / n)
                return elapsed

            def plain(rep: int) -> float:
                entries = _offline_entries.get(rep) or _offline_entries[min(_offline_entries)]
                # Fresh op_ids per repetition, so the naive server inserts every time.
                entries = [{**e, "op_id": f"{e['op_id']}-n{rep}"} for e in entries]
                path = base / f"naive-{rep}.db"
                naive.load_outbox(path, entries)
                transport = CountingTransport()
                with httpx.Client(base_url=naive_url, transport=transport, timeout=60) as client:
                    start = time.perf_counter()
                    sent = naive.drain(path, client)
                    elapsed = time.perf_counter() - start
                if sent != n:
                    raise RuntimeError(f"naive drain sent {sent} of {n}")
                naive_bytes.append((transport.sent + transport.received) / n)
                naive_conns.append(transport.connections * PER_10K / n)
                return elapsed

            _offline_entries: dict[int, list[dict[str, Any]]] = {}
            # Ours first in every pair: the naive side replays the entries ours recorded.
            times_ours: list[float] = []
            times_naive: list[float] = []
            for rep in range(sizes.drain_repeats):
                times_ours.append(ours(rep))
                times_naive.append(plain(rep))
    return {
        "drain_vs_naive": paired_ratio(times_naive, times_ours),
        "bytes_per_entry_vs_naive": median(ours_bytes) / median(naive_bytes),
        "drain_entries": n,
        "drain_s": median(times_ours),
        "naive_drain_s": median(times_naive),
        "drain_entries_per_s": n / median(times_ours),
        "naive_entries_per_s": n / median(times_naive),
        "bytes_per_entry": median(ours_bytes),
        "naive_bytes_per_entry": median(naive_bytes),
        "drain_connections": round(median(ours_conns) * n / PER_10K),
        "connections_per_10k_entries": median(ours_conns),
        "naive_connections_per_10k_entries": median(naive_conns),
    }


def _fill(client: SyncClient, n: int, rep: int) -> None:
    """One ``record()`` per entry, each its own transaction, as a rep's taps are."""
    rng = random.Random(SEED + rep)
    for i in range(n):
        client.record("customers", f"c-{rep}-{i}", customer_fields(i, rng))


def _all_entries(client: SyncClient) -> list[Any]:
    found: list[Any] = []
    after = 0
    while page := client.entries(after_seq=after, limit=1000):
        found.extend(page)
        after = page[-1].seq
    return found


def _as_entry(e: Any, device_id: str) -> Entry:
    return Entry(
        op_id=e.op_id,
        device_id=device_id,
        seq=e.seq,
        tx_id=e.tx_id,
        tx_count=1,  # _fill records one entry per transaction
        hlc=e.hlc,
        collection=e.collection,
        record_id=e.record_id,
        kind=e.kind,
        fields=e.fields,
        schema_version=e.schema_version,
    )

"""7. The audit: the fleet view and one device's audit, 10 k devices / 1 M events vs 100 / 10 k.

Two SQLite databases are migrated and seeded in bulk (executemany on the DBAPI
connection, not through the API): ``devices``, one ``device_status`` row per device
(its figures drawn at random, as report ingestion would have left them), and
``journal_events``, the same number per device in both (100 by default), spread over
the last 96 hours: link, attempt, status and data-box events. Then, interleaved
small/large, each timed query is what a view runs in its read transaction: the
fleet view's first page (50 rows, the sort cycling through all five) and the 72-hour
audit of a random device. Figures: p50 and p99 of each, and the large/small ratio of
each (the issue's bound: at most 2).
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from server_sync import create_engine, upgrade
from server_sync.audit import DEFAULT_WINDOW_MS, device_audit
from server_sync.fleet import SORTS, fleet

from ._common import SEED, Sizes, median, percentile

#: The moment the seeded journals end (server ms), fixed so every run reads the same rows.
NOW_MS = 1_767_225_600_000

HOUR_MS = 3_600_000

#: Rows the fleet view lists per page.
PAGE = 50

_CHUNK = 50_000
_OUTCOMES = ("ok", "ok", "ok", "timeout", "dns_failure", "network_unreachable", "server_error")


def run(sizes: Sizes, workdir: Path | None = None) -> dict[str, Any]:
    """fleet_view_10k_vs_100 and device_audit_10k_vs_100 on SQLite, with p50/p99."""
    with tempfile.TemporaryDirectory(dir=workdir, prefix="fs-bench-fleet-") as tmp:
        small = _seeded(Path(tmp) / "small.db", sizes.fleet_small_devices, sizes.fleet_small_events)
        large = _seeded(Path(tmp) / "large.db", sizes.fleet_large_devices, sizes.fleet_large_events)
        try:
            return _measure(sizes, small, large)
        finally:
            small.engine.dispose()
            large.engine.dispose()


class _Fleet:
    """A seeded database and its device ids."""

    def __init__(self, engine: sa.Engine, device_ids: list[str], seed_s: float) -> None:
        self.engine = engine
        self.device_ids = device_ids
        self.seed_s = seed_s


def _seeded(path: Path, n_devices: int, n_events: int) -> _Fleet:
    engine = create_engine(f"sqlite:///{path}")
    upgrade(engine)
    start = time.perf_counter()
    rng = random.Random(SEED)
    ids = [f"dev-{i:06d}" for i in range(n_devices)]
    raw = engine.raw_connection()
    try:
        cur: Any = raw.driver_connection
        cur.execute("BEGIN")
        cur.executemany(
            "INSERT INTO devices (id, name, token_hash, created_at) VALUES (?, ?, ?, ?)",
            [(d, f"rep {d}", f"{i:064x}", "2026-01-01 00:00:00.000000") for i, d in enumerate(ids)],
        )
        cur.executemany(_STATUS, [_status(d, rng) for d in ids])
        per_device = max(n_events // n_devices, 1)
        rows: list[tuple[Any, ...]] = []
        for i in range(n_events):
            rows.append(_event(ids[i // per_device % n_devices], i, rng))
            if len(rows) == _CHUNK:
                cur.executemany(_EVENT, rows)
                rows.clear()
        cur.executemany(_EVENT, rows)
        cur.execute("COMMIT")
        cur.execute("ANALYZE")
    finally:
        raw.close()
    return _Fleet(engine, ids, time.perf_counter() - start)


_STATUS = (
    "INSERT INTO device_status (device_id, last_seen_ms, reports, offset_ms, status_at_ms, "
    "app_version, protocol_version, queue_depth, free_bytes, parked, oldest_parked_ms, "
    "figures_at_ms, offline_ms, online_ms, attempts, failed, failure_ppm, last_sync_ms) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_EVENT = (
    "INSERT INTO journal_events (device_id, event_id, kind, at_ms, at_server_ms, received_ms, "
    "batch_id, channel, up, body_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _status(device_id: str, rng: random.Random) -> tuple[Any, ...]:
    seen = NOW_MS - rng.randrange(0, 96 * HOUR_MS)
    attempts = rng.randrange(0, 200)
    failed = rng.randrange(0, attempts + 1)
    parked = rng.randrange(0, 4)
    offline = rng.randrange(0, DEFAULT_WINDOW_MS // 2)
    return (
        device_id, seen, rng.randrange(1, 500), rng.randrange(-60_000, 60_000), seen, "3.2.0",
        "2.1", rng.randrange(0, 300), rng.randrange(10**8, 10**11), parked,
        seen - rng.randrange(1, 10**8) if parked else 0, seen, offline,
        DEFAULT_WINDOW_MS - offline, attempts, failed,
        round(failed / attempts * 1_000_000) if attempts else 0, seen,
    )  # fmt: skip


def _event(device_id: str, i: int, rng: random.Random) -> tuple[Any, ...]:
    at = NOW_MS - rng.randrange(0, 96 * HOUR_MS)
    kind = rng.choice(("link", "link", "attempt", "attempt", "status", "databox"))
    body: dict[str, Any] = {"id": f"ev-{i}", "at_ms": at, "kind": kind}
    channel, up = None, None
    if kind == "link":
        channel, up = rng.choice(("wifi", "cellular")), rng.random() < 0.5
        body.update(channel=channel, up=up, source="os")
    elif kind == "attempt":
        body.update(channel="wifi", started_ms=at - 800, ended_ms=at, entries=rng.randrange(50),
                    bytes_sent=rng.randrange(10**5), bytes_received=rng.randrange(10**4),
                    outcome=rng.choice(_OUTCOMES))  # fmt: skip
    elif kind == "status":
        body.update(queue_depth=rng.randrange(100), free_bytes=10**9, app_version="3.2.0",
                    protocol_version="2.1")  # fmt: skip
    else:
        body.update(action="discard", op_id=f"op-{i}", reason="duplicate")
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return (device_id, f"ev-{i}", kind, at, at, at + 1000, f"b-{i // 50}", channel, up, text)


def _measure(sizes: Sizes, small: _Fleet, large: _Fleet) -> dict[str, Any]:
    rng = random.Random(SEED + 7)
    sorts = tuple(SORTS)

    def fleet_view(db: _Fleet, i: int) -> float:
        return _timed(db, lambda conn: fleet(conn, sort=sorts[i % len(sorts)], limit=PAGE))

    def audit(db: _Fleet, i: int) -> float:
        device_id = rng.choice(db.device_ids)
        window = (NOW_MS - DEFAULT_WINDOW_MS, NOW_MS)
        return _timed(db, lambda conn: device_audit(conn, device_id, *window))

    out: dict[str, Any] = {
        "fleet_small_devices": len(small.device_ids),
        "fleet_large_devices": len(large.device_ids),
        "fleet_seed_large_s": large.seed_s,
    }
    for name, query in (("fleet_view", fleet_view), ("device_audit", audit)):
        for db in (small, large):  # warm the caches and compiled statements, untimed
            query(db, 0)
        t_small: list[float] = []
        t_large: list[float] = []
        for i in range(sizes.fleet_queries):
            order = ((small, t_small), (large, t_large))
            for db, times in order if i % 2 == 0 else order[::-1]:
                times.append(query(db, i))
        out.update(_figures(name, t_small, t_large))
    return out


def _timed(db: _Fleet, query: Callable[[sa.Connection], object]) -> float:
    """Seconds one query takes in its own read transaction, as a view runs it."""
    start = time.perf_counter()
    with db.engine.connect() as conn:
        query(conn)
    return time.perf_counter() - start


def _figures(name: str, small: list[float], large: list[float]) -> dict[str, Any]:
    p50_s, p50_l = median(small), median(large)
    p99_s, p99_l = percentile(small, 99), percentile(large, 99)
    return {
        f"{name}_10k_vs_100": p50_l / p50_s,
        f"{name}_p99_10k_vs_100": p99_l / p99_s,
        f"{name}_small_p50_ms": p50_s * 1000,
        f"{name}_small_p99_ms": p99_s * 1000,
        f"{name}_large_p50_ms": p50_l * 1000,
        f"{name}_large_p99_ms": p99_l * 1000,
    }

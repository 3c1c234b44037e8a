"""3. Server apply: scaling from 10 k to 1 M stored ops, and cost over a raw insert.

The server database is seeded in bulk (executemany on SQLite, COPY on PostgreSQL),
not through the API: ``ops`` gets the stored ops (spread over 100 devices) and
``records`` one row per customer (a quarter as many customers as ops, four fields
each, one stored op per field). Then ``apply_batch`` runs on batches of 500 fresh
entries, half of them new customers and half updates of seeded ones (random keys: the
B-tree lookups that grow with the table), one database transaction per batch, as the
view does. The small and
large databases are measured interleaved; the ratio is large / small throughput.

``apply_vs_raw`` (``_pg``): on the small database, the same batches through
``apply_batch`` and through the least a server could do with them: a raw
``INSERT … ON CONFLICT (device_id, op_id) DO NOTHING`` executemany of one row per op
(its fields as JSON) into a table of its own, on the engine's DBAPI connection, one
transaction per batch. Interleaved; the ratio is apply throughput / raw throughput.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from uuid6 import uuid7

from conflict.hlc import Hlc
from protocol import PROTOCOL_VERSION, Batch, Entry, canonical_json, crm_registry
from server_sync import add_device, apply_batch, create_engine, upgrade
from simulations.procs import scratch_schema

from ._common import SEED, Sizes, customer_fields, interleave, median, paired_ratio

DEVICES = 100
BATCH = 500
_CHUNK = 50_000
_OPS_COLUMNS = (
    "device_id",
    "op_id",
    "seq",
    "tx_id",
    "batch_id",
    "collection",
    "record_id",
    "kind",
    "hlc",
    "schema_version",
    "fields_json",
    "digest",
    "status",
    "result_json",
    "received_at",
)
_RECORD_COLUMNS = ("collection", "record_id", "doc_json", "clocks_json")
_FIELDS = ("name", "phone", "email", "address")


def run(sizes: Sizes, workdir: Path | None = None) -> dict[str, Any]:
    """apply_1m_vs_10k on SQLite and, given a PostgreSQL URL, on PostgreSQL."""
    out: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(dir=workdir, prefix="fs-bench-apply-") as tmp,
        _sqlite(Path(tmp) / "small.db") as small,
        _sqlite(Path(tmp) / "large.db") as large,
    ):
        out.update(_measure(sizes, small, large, "sqlite"))
        out.update(_versus_raw(sizes, small, "sqlite"))
    if sizes.postgres_url:
        with pg_engine(sizes.postgres_url) as small, pg_engine(sizes.postgres_url) as large:
            out.update(_measure(sizes, small, large, "pg"))
            out.update(_versus_raw(sizes, small, "pg"))
    return out


def _measure(sizes: Sizes, small: sa.Engine, large: sa.Engine, name: str) -> dict[str, Any]:
    seeded: dict[int, list[str]] = {}
    for engine, n in ((small, sizes.apply_small), (large, sizes.apply_large)):
        start = time.perf_counter()
        seeded[id(engine)] = _seed(engine, n)
        seed_s = time.perf_counter() - start
    devices: dict[int, str] = {}
    for engine in (small, large):
        with engine.begin() as conn:
            devices[id(engine)] = add_device(conn, "apply-bench")[0]
    registry = crm_registry()
    rng = random.Random(SEED)

    def one(engine: sa.Engine, rep: int) -> float:
        device_id = devices[id(engine)]
        batches = [
            _batch(device_id, seeded[id(engine)], rng, (rep * sizes.apply_batches + b) * BATCH)
            for b in range(sizes.apply_batches)
        ]
        start = time.perf_counter()
        for batch in batches:
            with engine.begin() as conn:
                apply_batch(conn, device_id, batch, registry)
        return time.perf_counter() - start

    # One untimed pass each warms the connection pools and compiled statements.
    one(small, -1)
    one(large, -2)
    t_small, t_large = interleave(sizes.repeats, lambda r: one(small, r), lambda r: one(large, r))
    ops_applied = sizes.apply_batches * BATCH
    return {
        f"apply_1m_vs_10k{'' if name == 'sqlite' else '_pg'}": paired_ratio(t_small, t_large),
        f"apply_{name}_small_ops_per_s": ops_applied / median(t_small),
        f"apply_{name}_large_ops_per_s": ops_applied / median(t_large),
        f"apply_{name}_seed_large_s": seed_s,
        "apply_small_ops": sizes.apply_small,
        "apply_large_ops": sizes.apply_large,
    }


_RAW_TABLE = """CREATE TABLE bench_raw_ops (
    device_id VARCHAR(64) NOT NULL, op_id VARCHAR(64) NOT NULL, seq BIGINT NOT NULL,
    tx_id VARCHAR(64) NOT NULL, collection VARCHAR(128) NOT NULL,
    record_id VARCHAR(128) NOT NULL, kind VARCHAR(16) NOT NULL, hlc VARCHAR(64) NOT NULL,
    fields_json TEXT NOT NULL, UNIQUE (device_id, op_id))"""
_RAW_INSERT = (
    "INSERT INTO bench_raw_ops (device_id, op_id, seq, tx_id, collection, record_id, kind, "
    "hlc, fields_json) VALUES ({marks}) ON CONFLICT (device_id, op_id) DO NOTHING"
)


def _versus_raw(sizes: Sizes, engine: sa.Engine, name: str) -> dict[str, Any]:
    """apply_batch throughput over a raw executemany of the same ops, same database."""
    with engine.begin() as conn:
        conn.exec_driver_sql(_RAW_TABLE)
        device_id = add_device(conn, "raw-bench")[0]
        records = [r for (r,) in conn.exec_driver_sql("SELECT DISTINCT record_id FROM ops")]
    registry = crm_registry()
    rng = random.Random(SEED + 1)
    mark = "%s" if name == "pg" else "?"
    insert = _RAW_INSERT.format(marks=", ".join([mark] * 9))
    made: dict[int, list[Batch]] = {}

    def batches(rep: int) -> list[Batch]:
        if rep not in made:
            first = 10_000_000 + rep * sizes.apply_batches * BATCH
            made[rep] = [
                _batch(device_id, records, rng, first + b * BATCH)
                for b in range(sizes.apply_batches)
            ]
        return made[rep]

    def ours(rep: int) -> float:
        todo = batches(rep)
        start = time.perf_counter()
        for batch in todo:
            with engine.begin() as conn:
                apply_batch(conn, device_id, batch, registry)
        return time.perf_counter() - start

    def raw(rep: int) -> float:
        todo = batches(rep)
        start = time.perf_counter()
        _raw_insert(engine, insert, todo)
        return time.perf_counter() - start

    ours(-1)
    raw(-1)
    t_ours, t_raw = interleave(sizes.repeats, ours, raw)
    suffix = "" if name == "sqlite" else "_pg"
    ops_applied = sizes.apply_batches * BATCH
    return {
        f"apply_vs_raw{suffix}": paired_ratio(t_raw, t_ours),
        f"apply_{name}_us_per_op": median(t_ours) / ops_applied * 1e6,
        f"raw_{name}_us_per_op": median(t_raw) / ops_applied * 1e6,
    }


def _raw_insert(engine: sa.Engine, insert: str, batches: list[Batch]) -> None:
    """Each batch as one executemany in one transaction, on the engine's DBAPI connection."""
    raw = engine.raw_connection()
    try:
        driver: Any = raw.driver_connection
        sqlite = engine.dialect.name == "sqlite"
        for batch in batches:
            rows = [
                (e.device_id, e.op_id, e.seq, e.tx_id, e.collection, e.record_id, e.kind, e.hlc,
                 json.dumps(e.fields))
                for e in batch.entries
            ]  # fmt: skip
            if sqlite:
                driver.execute("BEGIN IMMEDIATE")
                driver.executemany(insert, rows)
                driver.execute("COMMIT")
            else:
                with driver.cursor() as cur:
                    cur.executemany(insert, rows)
                driver.commit()
    finally:
        raw.close()


def _batch(device_id: str, records: list[str], rng: random.Random, first_seq: int) -> Batch:
    wall = 1_780_000_000_000 + first_seq
    entries = []
    for i in range(BATCH):
        seq = first_seq + i + 10  # the warm-up passes use negative firsts
        record_id = rng.choice(records) if i % 2 else f"new-{device_id[:8]}-{seq}"
        entries.append(
            Entry(
                op_id=str(uuid7()),  # time-ordered, as devices make them
                device_id=device_id,
                seq=seq,
                tx_id=str(uuid7()),
                tx_count=1,
                hlc=str(Hlc(wall + i, 0, device_id)),
                collection="customers",
                record_id=record_id,
                kind="upsert",
                fields=customer_fields(seq, rng),
                schema_version=1,
            )
        )
    return Batch(PROTOCOL_VERSION, str(uuid.uuid4()), device_id, tuple(entries))


def _seed(engine: sa.Engine, n: int) -> list[str]:
    """Store ``n`` ops and a record per four of them, in bulk; return the seeded ids."""
    with engine.begin() as conn:
        device_ids = [add_device(conn, f"seed-{d}")[0] for d in range(DEVICES)]
    now = datetime(2026, 11, 1, tzinfo=UTC)
    records = [f"seed-{r}" for r in range(max(1, n // 4))]
    result = '{"op_id":"x","status":"applied"}'
    for start in range(0, n, _CHUNK):
        ops_rows: list[tuple[Any, ...]] = []
        for i in range(start, min(n, start + _CHUNK)):
            device_id = device_ids[i % DEVICES]
            ops_rows.append(
                (
                    device_id,
                    f"{uuid.UUID(int=(SEED << 64) + i)}",
                    i // DEVICES + 1,
                    f"{uuid.UUID(int=(SEED << 65) + i // 10)}",
                    f"{uuid.UUID(int=(SEED << 66) + i // 500)}",
                    "customers",
                    records[(i // 4) % len(records)],
                    "patch",
                    f"{1_770_000_000_000 + i:013d}-00000-{device_id}",
                    1,
                    f'{{"name":"Seeded Customer {i}"}}',
                    f"{i:064x}",
                    "applied",
                    result,
                    now,
                )
            )
        _bulk(engine, "ops", _OPS_COLUMNS, ops_rows)
    for start in range(0, len(records), _CHUNK):
        chunk = range(start, min(len(records), start + _CHUNK))
        _bulk(engine, "records", _RECORD_COLUMNS, [_record(r, device_ids) for r in chunk])
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    return records


def _record(r: int, device_ids: list[str]) -> tuple[str, str, str, str]:
    """Seeded customer ``r``: field k written by stored op 4r + k."""
    doc, clocks = {}, {}
    for k, name in enumerate(_FIELDS):
        i = 4 * r + k
        doc[name] = f"seeded value {i}"
        clocks[name] = [1_770_000_000_000 + i, 0, device_ids[i % DEVICES]]
    return ("customers", f"seed-{r}", canonical_json(doc).decode(), canonical_json(clocks).decode())


def _bulk(
    engine: sa.Engine, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    raw = engine.raw_connection()
    try:
        driver: Any = raw.driver_connection
        names = ", ".join(columns)
        if engine.dialect.name == "postgresql":
            with driver.cursor() as cur, cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" for _ in columns)
            driver.execute("BEGIN")
            driver.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)
        driver.commit() if engine.dialect.name == "postgresql" else driver.execute("COMMIT")
    finally:
        raw.close()


@contextmanager
def _sqlite(path: Path) -> Iterator[sa.Engine]:
    engine = create_engine(f"sqlite:///{path}")
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()


@contextmanager
def pg_engine(url: str) -> Iterator[sa.Engine]:
    """An engine on a fresh, migrated schema of its own, dropped afterwards."""
    with scratch_schema(url, "fs_bench") as scoped:
        engine = create_engine(scoped)
        try:
            yield engine
        finally:
            engine.dispose()

"""Concurrent appliers merge into the same records without losing an update.

Four threads, each its own connection and device, apply batches that all touch the
same few records, released together by a barrier before every batch. The final
state must equal that of applying every entry one by one in a single thread: a
read-merge-write that let two transactions read the same row before either wrote
would lose one side's fields (on PostgreSQL the rows are locked FOR UPDATE after
missing ones are inserted; on SQLite the transaction holds the write lock).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from conflict import Hlc
from protocol import PROTOCOL_VERSION, Batch, Entry, crm_registry
from server_sync import apply_batch, create_engine, get_record, records, upgrade
from server_sync.models import devices
from server_sync.models import records as records_table

DEVICES = ("d1", "d2", "d3", "d4")
RECORDS = ("r0", "r1", "r2")
BATCHES = 30
PER_BATCH = 6
REGISTRY = crm_registry()


def _batches(device: str, rng: random.Random) -> list[Batch]:
    """Patches and upserts of the shared records, each field from this device's stamps."""
    out = []
    for b in range(BATCHES):
        entries = []
        for i in range(PER_BATCH):
            seq = b * PER_BATCH + i + 1
            fields: dict[str, Any] = {rng.choice(["name", "notes"]): f"{device}-{seq}"}
            if rng.random() < 0.3:
                fields = {"name": f"{device}-{seq}", "notes": rng.choice([None, "n"])}
            entries.append(
                Entry(
                    op_id=f"{device}-op-{seq}",
                    device_id=device,
                    seq=seq,
                    tx_id=f"{device}-tx-{seq}",
                    tx_count=1,
                    # Walls interleave across devices, so every device wins some fields.
                    hlc=str(Hlc(1_700_000_000_000 + rng.randrange(200), 0, device)),
                    collection="customers",
                    record_id=rng.choice(RECORDS),
                    kind="upsert" if "notes" in fields and "name" in fields else "patch",
                    fields=fields,
                    schema_version=1,
                )
            )
        out.append(Batch(PROTOCOL_VERSION, f"{device}-b{b}", device, tuple(entries)))
    return out


def _prepare(engine: sa.Engine) -> sa.Engine:
    with engine.begin() as conn:
        conn.execute(
            devices.insert(),
            [
                {"id": d, "name": d, "token_hash": d, "created_at": datetime.now(UTC)}
                for d in DEVICES
            ],
        )
    return engine


def _state(engine: sa.Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(sa.select(records_table)))


def _apply(engine: sa.Engine, batch: Batch) -> None:
    with engine.begin() as conn:
        ack = apply_batch(conn, batch.device_id, batch, REGISTRY)
    assert {r.status for r in ack.results} == {"applied"}


def _race(engine: sa.Engine, work: dict[str, list[Batch]]) -> None:
    """Each device's batches in a thread of its own, all released together per round."""
    barrier = threading.Barrier(len(work))
    errors: list[BaseException] = []

    def run(batches: list[Batch]) -> None:
        try:
            for batch in batches:
                barrier.wait(timeout=30)
                _apply(engine, batch)
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(b,)) for b in work.values()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not [t for t in threads if t.is_alive()]
    assert not errors, errors


def _check(shared: sa.Engine, reference: sa.Engine) -> None:
    rng = random.Random(20261125)
    work = {d: _batches(d, rng) for d in DEVICES}
    _race(shared, work)
    for batches in work.values():
        for batch in batches:
            _apply(reference, batch)
    state = _state(shared)
    assert len(state) == len(RECORDS)
    assert state == _state(reference)


def _one(device: str, wall: int, fields: dict[str, Any]) -> Batch:
    entry = Entry(
        op_id=f"{device}-op",
        device_id=device,
        seq=1,
        tx_id=f"{device}-tx",
        tx_count=1,
        hlc=str(Hlc(1_700_000_000_000 + wall, 0, device)),
        collection="customers",
        record_id="r1",
        kind="patch",
        fields=fields,
        schema_version=1,
    )
    return Batch(PROTOCOL_VERSION, f"{device}-b", device, (entry,))


def _interleave(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A has read r1 and is about to write; B applies then. B must not read before A's write."""
    _apply(engine, _one("d3", 0, {"address": "before"}))  # r1 exists: its row must be locked
    a_read, b_read = threading.Event(), threading.Event()
    merge = records.merge_stored

    def gated(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread().name == "A":
            a_read.set()
            # Without the lock, B reads the same (empty) row and says so here; with it,
            # B waits for A's commit and this wait just runs out.
            b_read.wait(timeout=2)
        else:
            b_read.set()
        return merge(*args, **kwargs)

    monkeypatch.setattr(records, "merge_stored", gated)
    errors: list[BaseException] = []

    def run(batch: Batch) -> None:
        try:
            _apply(engine, batch)
        except BaseException as exc:
            errors.append(exc)

    a = threading.Thread(target=run, args=(_one("d1", 2, {"name": "from A"}),), name="A")
    b = threading.Thread(target=run, args=(_one("d2", 1, {"notes": "from B"}),), name="B")
    a.start()
    assert a_read.wait(timeout=30)
    b.start()
    a.join(timeout=60)
    b.join(timeout=60)
    assert not errors, errors
    with engine.connect() as conn:
        record = get_record(conn, "customers", "r1") or {}
    assert (record.get("name"), record.get("notes")) == ("from A", "from B")
    assert record.get("address") == "before"


def test_sqlite_a_read_merge_write_is_not_interleaved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'two.db'}")
    try:
        upgrade(engine)
        _interleave(_prepare(engine), monkeypatch)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_a_read_merge_write_is_not_interleaved(
    pg_schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(pg_schema_url)
    try:
        _interleave(_prepare(engine), monkeypatch)
    finally:
        engine.dispose()


@pytest.fixture
def reference(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'reference.db'}")
    upgrade(engine)
    yield _prepare(engine)
    engine.dispose()


def test_sqlite_concurrent_appliers_lose_no_update(tmp_path: Path, reference: sa.Engine) -> None:
    shared = create_engine(f"sqlite:///{tmp_path / 'shared.db'}")
    try:
        upgrade(shared)
        _check(_prepare(shared), reference)
    finally:
        shared.dispose()


@pytest.mark.postgres
def test_postgres_concurrent_appliers_lose_no_update(
    pg_schema_url: str, reference: sa.Engine
) -> None:
    shared = create_engine(pg_schema_url, pool_size=len(DEVICES))
    try:
        _check(_prepare(shared), reference)
    finally:
        shared.dispose()

"""apply_batch without HTTP: the race with another server process, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from conflict import Hlc
from protocol import PROTOCOL_VERSION, Ack, Batch, Entry, crm_registry
from server_sync import add_device, apply_batch, create_engine, get_record, service, upgrade
from server_sync.errors import WrongDevice
from tests.server_sync.conftest import rows
from tests.whole import UNSET, whole

REGISTRY = crm_registry()


def _batch(device_id: str) -> Batch:
    entries = tuple(
        Entry(
            op_id=f"op-{i}",
            device_id=device_id,
            seq=i,
            tx_id=f"tx-{i // 2}",
            tx_count=UNSET,
            hlc=str(Hlc(1_700_000_000_000, i, device_id)),
            collection="customers",
            record_id=f"c{i}",
            kind="upsert",
            fields={"name": f"Customer {i}"},
            schema_version=1,
        )
        for i in range(1, 5)
    )
    return Batch(PROTOCOL_VERSION, "b1", device_id, whole(entries))


def _enrol(engine: sa.Engine) -> str:
    with engine.begin() as conn:
        device_id, _ = add_device(conn, "phone")
    return device_id


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 's.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def test_a_device_can_only_submit_as_itself(sqlite_engine: sa.Engine) -> None:
    me, other = _enrol(sqlite_engine), _enrol(sqlite_engine)
    with pytest.raises(WrongDevice), sqlite_engine.begin() as conn:
        apply_batch(conn, me, _batch(other), REGISTRY)
    assert rows(sqlite_engine)["ops"] == []


def test_a_lost_race_is_answered_from_the_winners_rows(
    sqlite_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    device_id = _enrol(sqlite_engine)
    batch = _batch(device_id)
    with sqlite_engine.begin() as conn:
        won = apply_batch(conn, device_id, batch, REGISTRY)
    state = rows(sqlite_engine)
    # The loser looked before the winner committed: its first look finds nothing.
    real = service._load_stored
    calls = []

    def stale_then_real(conn: sa.Connection, device: str, op_ids: list[str]) -> object:
        calls.append(op_ids)
        return {} if len(calls) == 1 else real(conn, device, op_ids)

    monkeypatch.setattr(service, "_load_stored", stale_then_real)

    with sqlite_engine.begin() as conn:
        lost = apply_batch(conn, device_id, batch, REGISTRY)

    assert len(calls) > 1, "the unique constraint never fired"
    assert [r.status for r in lost.results] == ["duplicate"] * 4
    assert [r.original for r in lost.results] == list(won.results)
    assert rows(sqlite_engine) == state


@pytest.mark.postgres
def test_concurrent_transactions_on_postgres_apply_once(pg_schema_url: str) -> None:
    engine = create_engine(pg_schema_url)
    try:
        device_id = _enrol(engine)
        batch = _batch(device_id)
        second: dict[str, object] = {}

        def loser() -> None:
            with engine.begin() as conn:
                second["pid"] = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
                second["ack"] = apply_batch(conn, device_id, batch, REGISTRY)

        with engine.begin() as conn:
            first = apply_batch(conn, device_id, batch, REGISTRY)
            thread = threading.Thread(target=loser)
            thread.start()
            _wait_until_blocked(engine, second)
        thread.join(timeout=20)
        assert not thread.is_alive()

        ack = second["ack"]
        assert isinstance(ack, Ack)
        assert [r.status for r in ack.results] == ["duplicate"] * 4
        assert [r.original for r in ack.results] == list(first.results)
        assert len(rows(engine)["ops"]) == 4
        with engine.connect() as conn:
            assert get_record(conn, "customers", "c1") == {
                "name": "Customer 1",
                "phone": None,
                "email": None,
                "address": None,
                "notes": None,
            }
    finally:
        engine.dispose()


def _wait_until_blocked(engine: sa.Engine, second: dict[str, object]) -> None:
    """Wait until the second transaction waits on the first one's row lock."""
    deadline = time.monotonic() + 15
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            pid = second.get("pid")
            waiting = (
                pid is not None
                and conn.execute(
                    sa.text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"),
                    {"pid": pid},
                ).scalar()
            )
            conn.rollback()
            if waiting == "Lock":
                return
            time.sleep(0.02)
    raise AssertionError("the second transaction never waited for the first")


def test_a_race_lost_on_some_transactions_still_applies_the_others(
    sqlite_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The whole batch is inserted under one savepoint first; when that hits the
    # unique constraint, each transaction must be answered on its own again.
    device_id = _enrol(sqlite_engine)
    batch = _batch(device_id)
    first_tx = Batch(batch.protocol_version, "b0", device_id, batch.entries[:1])
    with sqlite_engine.begin() as conn:
        won = apply_batch(conn, device_id, first_tx, REGISTRY)
    real = service._load_stored
    calls = []

    def stale_then_real(conn: sa.Connection, device: str, op_ids: list[str]) -> object:
        calls.append(op_ids)
        return {} if len(calls) == 1 else real(conn, device, op_ids)

    monkeypatch.setattr(service, "_load_stored", stale_then_real)

    with sqlite_engine.begin() as conn:
        ack = apply_batch(conn, device_id, batch, REGISTRY)

    # tx-0 (op-1) was stored by the "winner"; tx-1 (op-2, op-3) and tx-2 (op-4) are new.
    assert len(calls) > 1, "the unique constraint never fired"
    assert [r.op_id for r in ack.results] == ["op-1", "op-2", "op-3", "op-4"]
    assert ack.results[0].status == "duplicate"
    assert ack.results[0].original == won.results[0]
    assert [r.status for r in ack.results[1:]] == ["applied"] * 3
    with sqlite_engine.connect() as conn:
        for i in (2, 3, 4):
            assert get_record(conn, "customers", f"c{i}")["name"] == f"Customer {i}"  # type: ignore[index]
        stored = conn.execute(sa.text("select op_id from ops order by seq")).scalars().all()
    assert stored == ["op-1", "op-2", "op-3", "op-4"]

"""Record state is per-field last-writer-wins by HLC: the same entries in any order,
any number of times, on SQLite or PostgreSQL, give the same state."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from conflict import Hlc
from protocol import PROTOCOL_VERSION, Batch, Entry, crm_registry
from server_sync import apply_batch, create_engine, get_record, upgrade
from server_sync.models import devices, ops, records

DEVICES = ("d1", "d2", "d3")
REGISTRY = crm_registry()


def _prepare(engine: sa.Engine) -> sa.Engine:
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(
            devices.insert(),
            [
                {"id": d, "name": d, "token_hash": d, "created_at": datetime.now(UTC)}
                for d in DEVICES
            ],
        )
    return engine


def _reset(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(records.delete())
        conn.execute(ops.delete())


def _apply_each(engine: sa.Engine, entries: list[Entry]) -> None:
    """Each entry in its own batch, as devices syncing one after another would."""
    for entry in entries:
        with engine.begin() as conn:
            ack = apply_batch(
                conn,
                entry.device_id,
                Batch(PROTOCOL_VERSION, "b", entry.device_id, (entry,)),
                REGISTRY,
            )
        assert ack.results[0].outcome.status == "applied"


def _state(engine: sa.Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(sa.select(records)))


@pytest.fixture(scope="module")
def two_dbs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[sa.Engine, sa.Engine]]:
    base: Path = tmp_path_factory.mktemp("lww")
    one = _prepare(create_engine(f"sqlite:///{base / 'one.db'}"))
    two = _prepare(create_engine(f"sqlite:///{base / 'two.db'}"))
    yield one, two
    one.dispose()
    two.dispose()


@st.composite
def _writes(draw: st.DrawFn) -> list[Entry]:
    count = draw(st.integers(1, 12))
    out = []
    for i in range(count):
        device = draw(st.sampled_from(DEVICES))
        kind = draw(st.sampled_from(["upsert", "patch", "delete"]))
        value = st.sampled_from(["a", "b", "c"])
        if kind == "upsert":
            fields = {"name": draw(value), "notes": draw(st.none() | value)}
        elif kind == "patch":
            fields = draw(st.dictionaries(st.sampled_from(["name", "notes"]), value, min_size=1))
        else:
            fields = {}
        # Few distinct stamps, so equal HLCs with different values do happen.
        stamp = Hlc(draw(st.integers(0, 2)), draw(st.integers(0, 1)), device)
        out.append(
            Entry(
                op_id=f"op-{i}",
                device_id=device,
                seq=i + 1,
                tx_id=f"tx-{i}",
                tx_count=1,
                hlc=str(stamp),
                collection="customers",
                record_id=draw(st.sampled_from(["r1", "r2"])),
                kind=kind,
                fields=fields,
                schema_version=1,
            )
        )
    return out


@settings(max_examples=40, deadline=None, derandomize=True)
@given(entries=_writes(), data=st.data())
def test_any_order_and_any_repetition_gives_the_same_state(
    two_dbs: tuple[sa.Engine, sa.Engine], entries: list[Entry], data: st.DataObject
) -> None:
    one, two = two_dbs
    _reset(one)
    _reset(two)
    shuffled = data.draw(st.permutations(entries))

    _apply_each(one, entries)
    _apply_each(two, shuffled)
    _apply_each(two, entries)  # replays: duplicates change nothing

    assert _state(one) == _state(two)
    with one.connect() as a, two.connect() as b:
        for record_id in ("r1", "r2"):
            assert get_record(a, "customers", record_id) == get_record(b, "customers", record_id)


def _conflicting() -> list[Entry]:
    def entry(i: int, device: str, wall: int, **over: Any) -> Entry:
        base = Entry(
            op_id=f"op-{i}",
            device_id=device,
            seq=i,
            tx_id=f"tx-{i}",
            tx_count=1,
            hlc=str(Hlc(1_700_000_000_000 + wall, 0, device)),
            collection="customers",
            record_id="r1",
            kind="patch",
            fields={},
            schema_version=1,
        )
        return replace(base, **over)

    return [
        entry(1, "d1", 0, kind="upsert", fields={"name": "First", "notes": "n1"}),
        entry(2, "d2", 5, fields={"notes": "from d2"}),
        entry(3, "d3", 5, fields={"notes": "from d3"}),  # same wall time: node decides
        entry(4, "d1", 3, fields={"name": "Older", "notes": "older"}),
        entry(5, "d2", 7, kind="delete"),
        entry(6, "d3", 9, fields={"name": "Revived"}),
        entry(7, "d1", 2, kind="upsert", fields={"name": "Stale"}),
    ]


@pytest.fixture
def sqlite_engines(tmp_path: Path) -> Iterator[list[sa.Engine]]:
    engines = [_prepare(create_engine(f"sqlite:///{tmp_path / f'{i}.db'}")) for i in range(2)]
    yield engines
    for engine in engines:
        engine.dispose()


def test_conflicting_writes_resolve_by_hlc_then_node_in_any_order(
    sqlite_engines: list[sa.Engine],
) -> None:
    forward, backward = sqlite_engines
    _apply_each(forward, _conflicting())
    _apply_each(backward, _conflicting()[::-1])
    assert _state(forward) == _state(backward)
    with forward.connect() as conn:
        assert get_record(conn, "customers", "r1") == {
            "name": "Revived",  # newest name; the delete at 7 lost to the patch at 9
            "notes": "from d3",  # d2 and d3 wrote at the same instant: the node decides
            "phone": None,
            "email": None,
            "address": None,
        }


@pytest.mark.postgres
def test_sqlite_and_postgres_agree_whatever_the_order(
    sqlite_engines: list[sa.Engine], pg_schema_url: str
) -> None:
    pg = create_engine(pg_schema_url)
    try:
        with pg.begin() as conn:
            conn.execute(
                devices.insert(),
                [
                    {"id": d, "name": d, "token_hash": d, "created_at": datetime.now(UTC)}
                    for d in DEVICES
                ],
            )
        _apply_each(sqlite_engines[0], _conflicting())
        _apply_each(pg, _conflicting()[::-1])
        _apply_each(pg, _conflicting())
        assert _state(pg) == _state(sqlite_engines[0])
    finally:
        pg.dispose()

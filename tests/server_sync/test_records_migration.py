"""Migration 0004 carries record_fields (one row per field) over to records (one per
record) on a populated database, SQLite and PostgreSQL; the downgrade gives them back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from server_sync import add_device, create_app, get_record, upgrade
from server_sync.db import current_revision
from server_sync.extension import server_state

from .conftest import Wire, database_at, migrate

W = 1_700_000_000_000
#: (record_id, field, value_json, wall_ms, counter, node) as a 0003 server stored them.
FIELD_ROWS = [
    ("c1", "__deleted__", "false", W + 5, 0, "n1"),
    ("c1", "address", "null", W + 5, 0, "n1"),
    ("c1", "email", '"a@b.cn"', W + 7, 2, "n2"),
    ("c1", "name", '"Wang Fang"', W + 5, 0, "n1"),
    ("c1", "notes", '{"k":[1,"二"]}', W + 9, 0, "n3"),
    ("c1", "phone", '"13912345678"', W + 5, 0, "n1"),
    ("c2", "__deleted__", "true", W + 8, 1, "n2"),
    ("c2", "name", '"Gone"', W + 3, 0, "n1"),
    ("c3", "name", '"Only name"', W + 1, 99999, "n1"),
    ("c3", "__deleted__", "false", W + 1, 99999, "n1"),
]
COLUMNS = ("collection", "record_id", "field", "value_json", "hlc")
_fields = sa.table(
    "record_fields",
    *(sa.column(c) for c in (*COLUMNS, "hlc_wall_ms")),
    *(sa.column(c) for c in ("hlc_counter", "hlc_node")),
)


def _populate(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(_fields.insert(), [_field_row(*row) for row in FIELD_ROWS])


def _field_row(
    record_id: str, field: str, value: str, wall: int, counter: int, node: str
) -> dict[str, Any]:
    return {
        "collection": "customers",
        "record_id": record_id,
        "field": field,
        "value_json": value,
        "hlc": f"{wall:013d}-{counter:05d}-{node}",
        "hlc_wall_ms": wall,
        "hlc_counter": counter,
        "hlc_node": node,
    }


def _field_rows(engine: sa.Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(sa.select(_fields)))


def _carried_over(engine: sa.Engine) -> None:
    assert current_revision(engine) == "0004"
    with engine.connect() as conn:
        assert get_record(conn, "customers", "c1") == {
            "name": "Wang Fang",
            "phone": "13912345678",
            "email": "a@b.cn",
            "address": None,
            "notes": {"k": [1, "二"]},
        }
        assert get_record(conn, "customers", "c2") is None  # deleted
        assert get_record(conn, "customers", "c3") == {"name": "Only name"}
        clocks = conn.execute(
            sa.text("SELECT clocks_json FROM records WHERE record_id = 'c1'")
        ).scalar()
    assert clocks == (
        f'{{"__deleted__":[{W + 5},0,"n1"],"address":[{W + 5},0,"n1"],'
        f'"email":[{W + 7},2,"n2"],"name":[{W + 5},0,"n1"],'
        f'"notes":[{W + 9},0,"n3"],"phone":[{W + 5},0,"n1"]}}'
    )


def _merges_with_carried_clocks(url: str) -> None:
    """A write between the carried stamps wins where newer and loses where older."""
    app = create_app({"DATABASE_URL": url, "TESTING": True, "AUTO_UPGRADE": False})
    engine = server_state(app).engine
    try:
        with engine.begin() as conn:
            device_id, token = add_device(conn, "rep")
        wire = Wire(app.test_client(), device_id, token)
        between = f"{W + 6:013d}-00000-{device_id[:10]}"
        fields = {"name": "Newer", "email": "older@b.cn"}
        entry = wire.entry(1, record_id="c1", kind="patch", hlc=between, fields=fields)
        wire.ack(wire.batch(entry))
        with engine.connect() as conn:
            record = get_record(conn, "customers", "c1") or {}
        assert (record["name"], record["email"]) == ("Newer", "a@b.cn")
    finally:
        engine.dispose()


def _there_and_back(engine: sa.Engine) -> None:
    _populate(engine)
    before = _field_rows(engine)
    upgrade(engine, "0004")
    _carried_over(engine)
    migrate(engine, "0003", down=True)
    assert _field_rows(engine) == before
    upgrade(engine)


def test_sqlite_database_is_carried_over_and_back(tmp_path: Path) -> None:
    with database_at("0003", sqlite=tmp_path / "old.db") as engine:
        _there_and_back(engine)
        url = engine.url.render_as_string(hide_password=False)
    _merges_with_carried_clocks(url)


@pytest.mark.postgres
def test_postgres_database_is_carried_over_and_back(pg_url: str) -> None:
    with database_at("0003", pg_url=pg_url) as engine:  # field rows
        _there_and_back(engine)
        _merges_with_carried_clocks(engine.url.render_as_string(hide_password=False))

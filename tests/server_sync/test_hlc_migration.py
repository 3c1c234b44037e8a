"""Migration 0003 carries a populated database's stamps over to numeric columns (and 0004 on)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from server_sync import add_device, create_app, create_engine, upgrade
from server_sync.db import alembic_config, current_revision
from server_sync.extension import server_state
from server_sync.service import get_record
from simulations.procs import scratch_schema

from .conftest import Wire

#: (stored stamp text, the numbers and node it must carry over to, canonical text).
LEGACY = [
    ("1700000000000-00002-n1", (1_700_000_000_000, 2, "n1"), "1700000000000-00002-n1"),
    # Full-width digits: sorted after every ASCII stamp as text, so it won for ever.
    (
        "１７００００００００００１-０００００-n2",
        (1_700_000_000_001, 0, "n2"),
        "1700000000001-00000-n2",
    ),
    ("1700000000000-0000²-n3", (1_700_000_000_000, 2, "n3"), "1700000000000-00002-n3"),
]


def _migrate(engine: sa.Engine, revision: str, down: bool = False) -> None:
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)


def _populate(engine: sa.Engine) -> None:
    """Rows as a pre-0003 server wrote them: the stamp as text only."""
    fields = sa.table(
        "record_fields",
        *(sa.column(c) for c in ("collection", "record_id", "field", "value_json", "hlc")),
    )
    with engine.begin() as conn:
        for i, (text, _, _) in enumerate(LEGACY):
            conn.execute(
                fields.insert(),
                {
                    "collection": "customers",
                    "record_id": f"c{i}",
                    "field": "name",
                    "value_json": f'"legacy {i}"',
                    "hlc": text,
                },
            )


def _check(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        got = conn.execute(
            sa.text(
                "SELECT record_id, hlc, hlc_wall_ms, hlc_counter, hlc_node FROM record_fields"
                " ORDER BY record_id"
            )
        ).all()
    assert [(r.hlc, (r.hlc_wall_ms, r.hlc_counter, r.hlc_node)) for r in got] == [
        (text, numbers) for _, numbers, text in LEGACY
    ]
    assert current_revision(engine) == "0003"
    upgrade(engine)  # and on to head: 0004 carries the numbers into records' clocks


def _newer_write_wins(url: str) -> None:
    """The once-unbeatable full-width stamp now loses to a later ASCII one."""
    app = create_app({"DATABASE_URL": url, "TESTING": True, "AUTO_UPGRADE": False})
    engine = server_state(app).engine
    try:
        with engine.begin() as conn:
            device_id, token = add_device(conn, "rep")
        wire = Wire(app.test_client(), device_id, token)
        later = "1700000000002-00000-" + device_id[:10]
        wire.ack(wire.batch(wire.entry(1, record_id="c1", hlc=later, fields={"name": "new"})))
        with engine.connect() as conn:
            assert (get_record(conn, "customers", "c1") or {})["name"] == "new"
    finally:
        engine.dispose()


def test_sqlite_0001_database_is_carried_over(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    try:
        _migrate(engine, "0001")
        _populate(engine)
        upgrade(engine, "0003")
        _check(engine)
    finally:
        engine.dispose()
    _newer_write_wins(url)


@pytest.fixture
def pg_pre_0003(pg_url: str) -> Iterator[str]:
    """A PostgreSQL schema at revision 0002 (before numeric stamps)."""
    with scratch_schema(pg_url, "fs_mig") as url:
        engine = create_engine(url)
        try:
            _migrate(engine, "0002", down=True)
        finally:
            engine.dispose()
        yield url


@pytest.mark.postgres
def test_postgres_database_is_carried_over(pg_pre_0003: str) -> None:
    engine = create_engine(pg_pre_0003)
    try:
        _populate(engine)
        upgrade(engine, "0003")
        _check(engine)
    finally:
        engine.dispose()
    _newer_write_wins(pg_pre_0003)

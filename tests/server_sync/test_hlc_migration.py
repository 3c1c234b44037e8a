"""Migration 0003 carries a populated database's stamps over to numeric columns (and 0004 on)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from server_sync import add_device, create_app, upgrade
from server_sync.db import current_revision
from server_sync.extension import server_state
from server_sync.service import get_record

from .conftest import Wire, database_at

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


def _carry_over(engine: sa.Engine) -> None:
    _populate(engine)
    upgrade(engine, "0003")
    _check(engine)


def test_sqlite_0001_database_is_carried_over(tmp_path: Path) -> None:
    with database_at("0001", sqlite=tmp_path / "old.db") as engine:
        _carry_over(engine)
        url = engine.url.render_as_string(hide_password=False)
    _newer_write_wins(url)


@pytest.mark.postgres
def test_postgres_database_is_carried_over(pg_url: str) -> None:
    with database_at("0002", pg_url=pg_url) as engine:  # before numeric stamps
        _carry_over(engine)
        _newer_write_wins(engine.url.render_as_string(hide_password=False))

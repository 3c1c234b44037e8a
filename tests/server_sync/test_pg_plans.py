"""On PostgreSQL the server's reads are planned for their values; its writes are prepared.

psycopg prepares a statement on the server after five executions, and PostgreSQL
then switches to a generic plan when it looks no dearer. For the op-log lookup of a
batch (``device_id = $1 AND op_id IN ($2 … $501)``) on a table without statistics
yet (a new database, a device that is not in them), the generic plan filters every
op of the device against an array it rebuilds per row: measured 0.2-1 s per batch
at 5-10 k ops, against 10-40 ms with a plan made for the values (docs/performance.md,
"End-to-end drain"). So reads are never prepared (server_sync/db.py); writes are, as
planning each row of an executemany would cost more than it could save.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from flask import Flask

from server_sync import add_device, create_app
from server_sync.extension import server_state

from .conftest import Wire

BATCHES = 8
ENTRIES = 20


@pytest.fixture
def pg_app(pg_schema_url: str) -> Iterator[Flask]:
    """The real app on a fresh PostgreSQL schema."""
    app = create_app({"DATABASE_URL": pg_schema_url, "TESTING": True})
    yield app
    server_state(app).engine.dispose()


def test_a_drain_prepares_its_writes_and_no_read(pg_app: Flask) -> None:
    engine = server_state(pg_app).engine
    with engine.begin() as conn:
        device_id, token = add_device(conn, "rep phone")
    wire = Wire(pg_app.test_client(), device_id, token)
    seq = 0
    for b in range(BATCHES):
        entries = []
        for i in range(ENTRIES):
            seq += 1
            entries.append(wire.entry(seq, tx=f"t{seq}", record_id=f"c-{b}-{i}"))
        ack = wire.ack(wire.batch(*entries))
        assert {r.status for r in ack.results} == {"applied"}
    # Requests run one at a time, so the pool holds the one session that served them.
    assert engine.pool.checkedin() == 1
    with engine.connect() as conn:
        prepared = conn.execute(
            sa.text("SELECT statement FROM pg_prepared_statements WHERE NOT from_sql")
        ).scalars()
        verbs = Counter(text.split()[0].upper() for text in prepared)
    # The op log and the records, each inserted by executemany every batch.
    assert verbs["INSERT"] >= 2, verbs
    # Neither the token check, nor the op-log lookup, nor the records locked FOR UPDATE.
    assert verbs["SELECT"] == 0, verbs

"""On PostgreSQL the server's prepared statements are planned for their parameters.

psycopg prepares a statement on the server after five executions, and PostgreSQL
then switches to a generic plan when it looks no dearer. For the op-log lookup of a
batch (``device_id = $1 AND op_id IN ($2 … $501)``) on a table without statistics
yet (a new database, a device that is not in them), the generic plan filters every
op of the device against an array it rebuilds per row: measured 0.5-1 s per batch
at 10 k ops, against ~20 ms with a plan made for the values (docs/performance.md,
"End-to-end drain"). The engine's sessions force custom plans (server_sync/db.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from flask import Flask

from server_sync import add_device, create_app, create_engine
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


def test_no_statement_of_a_drain_runs_on_a_generic_plan(pg_app: Flask) -> None:
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
        generic, custom = conn.execute(
            sa.text(
                "SELECT coalesce(sum(generic_plans), 0), coalesce(sum(custom_plans), 0) "
                "FROM pg_prepared_statements "
                # One without parameters (SAVEPOINT) has nothing to plan for.
                "WHERE NOT from_sql AND cardinality(parameter_types) > 0"
            )
        ).one()
    assert custom > 0, "no statement was prepared: this test looks at the wrong session"
    assert generic == 0


def test_the_urls_own_options_still_apply_and_win(pg_schema_url: str) -> None:
    url = sa.make_url(pg_schema_url)
    own = f"{url.query['options']} -c plan_cache_mode=auto"
    engine = create_engine(url.update_query_dict({"options": own}))
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW plan_cache_mode").scalar() == "auto"
            # The scratch schema of the URL's search_path, holding the migrated tables.
            assert conn.exec_driver_sql("SELECT count(*) FROM ops").scalar() == 0
    finally:
        engine.dispose()

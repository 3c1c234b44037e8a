"""The outbox's work per batch must not grow with the number of entries waiting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event

from client_sync import SyncClient
from tests._doubles import FakeClock, RealServer

KEY = bytes(range(32))


def _plans(client: SyncClient, statements: list[tuple[str, Any]]) -> list[tuple[str, str]]:
    engine = client._outbox.store._engine
    found = []
    with engine.connect() as conn:
        for sql, params in statements:
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params).all()
            found += [(sql, row[-1]) for row in rows]
    return found


def test_moving_a_batch_finds_its_rows_by_seq_not_by_walking_a_state(tmp_path: Path) -> None:
    # Regression: "UPDATE … WHERE op_id IN (…) AND state = ?" was planned on the
    # (state, seq) index, so taking each batch read every pending entry: draining
    # a 100 k outbox was quadratic. Rows are moved by seq (the primary key) since
    # layout 4.
    server = RealServer(tmp_path / "server.db")
    device = server.enrol()
    client = SyncClient(
        tmp_path / "outbox.db",
        KEY,
        device_id=device.device_id,
        channels=[server.channel(device)],
        clock=FakeClock(),
    )
    try:
        for t in range(3):
            with client.transaction():
                for i in range(50):
                    client.record("customers", f"c-{t}-{i}", {"name": f"Customer {i}"})
        statements: list[tuple[str, Any]] = []

        @event.listens_for(client._outbox.store._engine, "before_cursor_execute")
        def _capture(_c: Any, _cur: Any, sql: str, params: Any, _ctx: Any, _many: bool) -> None:
            if sql.lstrip().upper().startswith("UPDATE ENTRIES"):
                statements.append((sql, params))

        assert client.sync_now().remaining == 0
        event.remove(client._outbox.store._engine, "before_cursor_execute", _capture)
        plans = _plans(client, statements)
    finally:
        client.close()
        server.close()
    assert plans, "no UPDATE was seen"
    for sql, detail in plans:
        assert "INTEGER PRIMARY KEY (rowid=?)" in detail, f"{sql!r} is planned as {detail!r}"

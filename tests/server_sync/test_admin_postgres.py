"""The admin API on PostgreSQL, which refuses NUL in text outright: hostile input must be
refused by the server's own checks before any query, and logged escaped."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from server_sync import add_device, create_app
from server_sync.extension import server_state
from tests.server_sync.admin_helpers import admin_client, log_rows
from tests.server_sync.conftest import error_of

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_app(pg_schema_url: str) -> Iterator[Flask]:
    """The real app on a migrated PostgreSQL schema."""
    app = create_app({"DATABASE_URL": pg_schema_url})
    yield app
    server_state(app).engine.dispose()


def test_hostile_admin_requests_on_postgres_are_4xx_and_logged(pg_app: Flask) -> None:
    engine = server_state(pg_app).engine
    with engine.begin() as conn:
        device_id, _ = add_device(conn, "phone")
    boss = admin_client(pg_app)
    answers = [
        boss.get("/v1/admin/devices/a%00b/commands"),
        boss.command("a%00b", {"kind": "resubmit", "op_id": "x"}),
        boss.command(device_id, {"kind": "discard", "op_id": "a\x00", "reason": "r"}),
        boss.command(device_id, {"kind": "discard", "op_id": "a", "reason": "r\x00"}),
        boss.get("/v1/admin/databox?code=%00"),
        boss.get("/v1/admin/databox?device_id=%00"),
        boss.get(f"/v1/admin/devices/{device_id}/commands?before=%00"),
        boss.get("/v1/admin/log?before=99999999999999999999"),
        boss.get("/v1/admin/log?before=9223372036854775807"),
    ]
    assert [a.status_code for a in answers] == [404, 404, 400, 400, 400, 400, 400, 400, 200]
    assert error_of(answers[0])["code"] == "unknown_device"
    made = boss.command(device_id, {"kind": "discard", "op_id": "op-1", "reason": "重复"})
    assert made.status_code == 201
    listed = boss.get(f"/v1/admin/devices/{device_id}/commands").json
    assert listed is not None and listed["commands"][0]["reason"] == "重复"
    logged = log_rows(engine)
    assert len(logged) == len(answers) + 2
    assert logged[0]["path"] == "/v1/admin/devices/a\\x00b/commands"

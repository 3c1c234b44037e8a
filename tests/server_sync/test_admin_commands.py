"""Commands to devices: strict requests, pending → delivered → done/failed, idempotent outcomes,
the audit's window; on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from protocol.constants import MAX_COMMANDS_PER_ACK
from server_sync import add_device
from server_sync.admins import add_admin
from server_sync.commands import (
    TRANSITIONS,
    commands_between,
    create_command,
    list_commands,
    open_count,
    pending_commands,
    store_outcomes,
)
from server_sync.errors import Conflict, UnknownDevice
from server_sync.models import device_commands
from tests.server_sync.admin_helpers import AdminClient, admin_client, log_rows, outcome
from tests.server_sync.conftest import Wire, error_of

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def _enrolled(engine: sa.Engine) -> tuple[str, str]:
    with engine.begin() as conn:
        device_id, _ = add_device(conn, "phone")
        admin, _ = add_admin(conn, "ann", "admin")
    return device_id, admin.admin_id


def test_a_command_goes_pending_delivered_done_and_is_resent_until_answered(
    any_db: sa.Engine,
) -> None:
    device, admin = _enrolled(any_db)
    with any_db.begin() as conn:
        first, created = create_command(
            conn, device, "discard", "op-1", "duplicate", admin_id=admin, now=T0
        )
        second, _ = create_command(conn, device, "resubmit", "op-2", "", admin_id=admin, now=T0)
        assert created and first.state == "pending" and open_count(conn) == 2
    for delivery, at in enumerate((T0 + timedelta(1), T0 + timedelta(2)), start=1):
        with any_db.begin() as conn:
            sent = pending_commands(conn, device, now=at)
        assert [c.command_id for c in sent] == [first.command_id, second.command_id]
        with any_db.connect() as conn:
            again = list_commands(conn, device, limit=10)
        assert {c.state for c in again} == {"delivered"}
        assert {c.deliveries for c in again} == {delivery}
        assert {c.delivered_at for c in again} == {T0 + timedelta(1)}  # the first delivery
    done = outcome(first.command_id, "done")
    failed = outcome(second.command_id, "failed", "not_parked", "no such entry")
    with any_db.begin() as conn:
        assert store_outcomes(conn, device, [done, failed], T0 + timedelta(3)) == [
            first.command_id,
            second.command_id,
        ]
        assert pending_commands(conn, device, now=T0 + timedelta(4)) == []
        assert open_count(conn) == 0
        listed = {c.command_id: c for c in list_commands(conn, device, limit=10)}
    assert listed[first.command_id].state == "done"
    assert listed[second.command_id].state == "failed"
    assert listed[second.command_id].outcome_code == "not_parked"
    assert listed[second.command_id].outcome_at == T0 + timedelta(3)


def test_outcomes_are_idempotent_and_unknown_ids_are_ignored_and_logged(
    any_db: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    device, admin = _enrolled(any_db)
    other, _ = _enrolled(any_db)
    with any_db.begin() as conn:
        command, _ = create_command(conn, device, "resubmit", "op-1", "", admin_id=admin, now=T0)
        pending_commands(conn, device, now=T0)
    report = [outcome(command.command_id, "done", new_op_id="op-1b")]
    with any_db.begin() as conn:
        assert store_outcomes(conn, device, report, T0 + timedelta(1)) == [command.command_id]
    with any_db.begin() as conn:  # the same report again, then a contradicting one
        assert store_outcomes(conn, device, report, T0 + timedelta(2)) == []
        late = [outcome(command.command_id, "failed", "x", "y")]
        assert store_outcomes(conn, device, late, T0 + timedelta(3)) == []
    with caplog.at_level(logging.WARNING, logger="server_sync.commands"), any_db.begin() as conn:
        stray = [outcome("no-such-command"), outcome(command.command_id)]
        assert store_outcomes(conn, other, stray, T0) == []  # another device's command too
    assert "unknown command 'no-such-command'" in caplog.text
    with any_db.connect() as conn:
        (stored,) = list_commands(conn, device, limit=5)
    assert (stored.state, stored.outcome_at, stored.new_op_id) == (
        "done",
        T0 + timedelta(1),
        "op-1b",
    )


def test_an_outcome_may_overtake_the_delivered_mark(any_db: sa.Engine) -> None:
    device, admin = _enrolled(any_db)
    with any_db.begin() as conn:
        command, _ = create_command(conn, device, "discard", "op-1", "r", admin_id=admin, now=T0)
        assert store_outcomes(conn, device, [outcome(command.command_id)], T0) == [
            command.command_id
        ]
    assert TRANSITIONS["pending"] >= {"done", "failed"}
    assert TRANSITIONS["done"] == TRANSITIONS["failed"] == frozenset()


def test_the_same_open_command_is_not_queued_twice_and_another_kind_conflicts(
    any_db: sa.Engine,
) -> None:
    device, admin = _enrolled(any_db)
    with any_db.begin() as conn:
        first, _ = create_command(conn, device, "discard", "op-1", "r", admin_id=admin)
        again, created = create_command(conn, device, "discard", "op-1", "r2", admin_id=admin)
        assert (again.command_id, created) == (first.command_id, False)
        with pytest.raises(Conflict):
            create_command(conn, device, "resubmit", "op-1", "", admin_id=admin)
        with pytest.raises(UnknownDevice):
            create_command(conn, "nobody", "discard", "op-1", "r", admin_id=admin)
        store_outcomes(conn, device, [outcome(first.command_id)], T0)
        _, created = create_command(conn, device, "resubmit", "op-1", "", admin_id=admin)
        assert created  # once answered, a new command on the entry is a new command


def test_an_ack_carries_at_most_a_bounded_number_oldest_first(any_db: sa.Engine) -> None:
    device, admin = _enrolled(any_db)
    with any_db.begin() as conn:
        made = [
            create_command(conn, device, "resubmit", f"op-{i}", "", admin_id=admin)[0]
            for i in range(MAX_COMMANDS_PER_ACK + 3)
        ]
        sent = pending_commands(conn, device, now=T0)
    assert [c.command_id for c in sent] == [c.command_id for c in made[:MAX_COMMANDS_PER_ACK]]


def test_commands_between_lists_what_moved_in_the_window(any_db: sa.Engine) -> None:
    device, admin = _enrolled(any_db)
    with any_db.begin() as conn:
        early, _ = create_command(conn, device, "discard", "a", "r", admin_id=admin, now=T0)
        late, _ = create_command(
            conn, device, "discard", "b", "r", admin_id=admin, now=T0 + timedelta(hours=10)
        )
        store_outcomes(conn, device, [outcome(early.command_id)], T0 + timedelta(hours=5))
    window = (T0 + timedelta(hours=4), T0 + timedelta(hours=6))
    with any_db.connect() as conn:
        assert [c.command_id for c in commands_between(conn, device, *window)] == [early.command_id]
        assert [
            c.command_id for c in commands_between(conn, device, T0, T0 + timedelta(days=1))
        ] == [early.command_id, late.command_id]
        assert commands_between(conn, device, T0 + timedelta(hours=11), T0 + timedelta(1)) == []


# --- over HTTP -------------------------------------------------------------------------


def test_post_then_get_a_command_with_its_outcome(
    app: Flask, wire: Wire, engine: sa.Engine
) -> None:
    boss = admin_client(app)
    made = boss.command(wire.device_id, {"kind": "discard", "op_id": "op-9", "reason": "dup"})
    assert made.status_code == 201, made.json
    body = made.json
    assert body is not None
    assert body["state"] == "pending" and body["created_by"] == boss.admin_id
    same = boss.command(wire.device_id, {"kind": "discard", "op_id": "op-9", "reason": "dup"})
    assert same.status_code == 200 and same.json == body
    other = boss.command(wire.device_id, {"kind": "resubmit", "op_id": "op-9"})
    assert other.status_code == 409 and error_of(other)["code"] == "command_conflict"
    with engine.begin() as conn:
        pending_commands(conn, wire.device_id)
        store_outcomes(conn, wire.device_id, [outcome(body["command_id"])], T0)
    listed = boss.get(f"/v1/admin/devices/{wire.device_id}/commands").json
    assert listed is not None
    (command,) = listed["commands"]
    assert (command["state"], command["deliveries"]) == ("done", 1)
    assert command["outcome_at"].startswith("2030-01-01")


def test_commands_are_paged_newest_first(app: Flask, wire: Wire) -> None:
    boss = admin_client(app)
    ids = [
        boss.command(wire.device_id, {"kind": "resubmit", "op_id": f"op-{i}"}).json["command_id"]  # type: ignore[index]
        for i in range(5)
    ]
    path = f"/v1/admin/devices/{wire.device_id}/commands"
    first = boss.get(f"{path}?limit=3").json
    assert first is not None
    assert [c["command_id"] for c in first["commands"]] == ids[::-1][:3]
    rest = boss.get(f"{path}?limit=3&before={first['next_before']}").json
    assert rest is not None
    assert [c["command_id"] for c in rest["commands"]] == ids[::-1][3:]
    assert rest["next_before"] is None


GOOD = {"kind": "discard", "op_id": "op-1", "reason": "entered twice"}

BAD_BODIES: list[tuple[Any, str]] = [
    ({**GOOD, "kind": "wipe"}, "kind"),
    ({**GOOD, "kind": 1}, "kind"),
    ({**GOOD, "reason": ""}, "reason"),
    ({**GOOD, "reason": "   "}, "reason"),
    ({"kind": "discard", "op_id": "op-1"}, "reason"),
    ({**GOOD, "reason": "x" * 65}, "reason"),  # the wire carries at most 64
    ({**GOOD, "reason": "line\nbreak"}, "reason"),
    ({**GOOD, "reason": "bell\x07"}, "reason"),
    ({**GOOD, "op_id": ""}, "op_id"),
    ({**GOOD, "op_id": "x" * 65}, "op_id"),
    ({**GOOD, "op_id": "a\x00b"}, "op_id"),
    ({**GOOD, "op_id": None}, "op_id"),
    ({**GOOD, "op_id": 7}, "op_id"),
    ({**GOOD, "extra": 1}, "extra"),
    ({"op_id": "op-1"}, "kind"),
    ([GOOD], "_schema"),
]


@pytest.mark.parametrize(("body", "member"), BAD_BODIES)
def test_a_bad_command_is_400_naming_the_member_and_writes_nothing(
    app: Flask, wire: Wire, engine: sa.Engine, body: Any, member: str
) -> None:
    answer = admin_client(app).command(wire.device_id, body)
    assert answer.status_code == 400, answer.json
    error = error_of(answer)
    assert error["code"] == "invalid_request"
    assert any(key.lstrip("/") == member for key in error["details"]), error
    _no_commands(engine)


RAW_BODIES = [
    b'{"kind": "discard", "kind": "resubmit", "op_id": "a", "reason": "r"}',  # duplicate key
    b'{"kind": "discard", "op_id": "\\ud800", "reason": "r"}',  # lone surrogate
    b'{"kind": "discard", "op_id": "a", "reason": "\\u0000"}',  # NUL
    b'{"kind": "discard", "op_id": "a", "reason": "r", "n": 1' + b"0" * 30 + b"}",  # huge int
    b'{"kind": "discard", "op_id": "a", "reason": "r", "n": 1e999}',  # infinite
    b'{"kind": "discard", "op_id": "a", "reason": NaN}',
    b"\xff\xfe",  # not UTF-8
    b"[" * 100_000,  # deep nesting (over the size limit before any parse)
    b"[" * 5000,  # deep nesting within it
    b"",
    b"null",
]


@pytest.mark.parametrize("raw", RAW_BODIES, ids=range(len(RAW_BODIES)))
def test_hostile_json_is_refused_with_a_4xx_and_writes_nothing(
    app: Flask, wire: Wire, engine: sa.Engine, raw: bytes
) -> None:
    answer = admin_client(app).command(
        wire.device_id, data=raw, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code in (400, 413), answer.json
    assert error_of(answer)["code"] in ("invalid_request", "payload_too_large")
    _no_commands(engine)


def test_wrong_media_type_unknown_device_and_bad_ids(
    app: Flask, wire: Wire, engine: sa.Engine
) -> None:
    boss = admin_client(app)
    text = boss.command(wire.device_id, data=b"{}", headers={"Content-Type": "text/plain"})
    assert (text.status_code, error_of(text)["code"]) == (415, "unsupported_media_type")
    for device in ("nobody", "a%00b", "x" * 65, "%ED%A0%80"):
        for answer in (
            boss.command(device, GOOD),
            boss.get(f"/v1/admin/devices/{device}/commands"),
        ):
            assert answer.status_code == 404, (device, answer.json)
            assert error_of(answer)["code"] == "unknown_device"
    _no_commands(engine)
    assert {r["status"] for r in log_rows(engine)} == {415, 404}


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=501",
        "limit=%D9%A3",  # Arabic-Indic three: int() takes it
        "limit=1_0",
        "limit=+5",
        "limit=%205",
        "limit=-1",
        "limit=" + "9" * 30,
        "limit=1&limit=2",
        "before=%00",
        "before=" + "x" * 65,
        "nope=1",
    ],
)
def test_bad_query_strings_are_400(app: Flask, wire: Wire, query: str) -> None:
    boss = admin_client(app)
    answer = boss.get(f"/v1/admin/devices/{wire.device_id}/commands?{query}")
    assert answer.status_code == 400, answer.json
    assert error_of(answer)["code"] == "invalid_request"


def _no_commands(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(device_commands)).scalar() == 0


def test_admin_client_helper_uses_its_own_token(app: Flask, wire: Wire) -> None:
    nobody = AdminClient(app.test_client(), "fsa_nobody")
    assert nobody.get("/v1/admin/databox").status_code == 401


def test_a_resubmit_without_a_reason_carries_a_default_one(app: Flask, wire: Wire) -> None:
    made = admin_client(app).command(wire.device_id, {"kind": "resubmit", "op_id": "op-1"})
    assert made.json is not None and made.json["reason"] == "resubmitted by an admin"

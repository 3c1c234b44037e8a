"""Commands ride on acks and outcomes come back in reports, through the real batch view:
at-least-once delivery, outcomes stored once, the data box kept, 2.0 devices left alone."""

from __future__ import annotations

import json

import sqlalchemy as sa
from flask import Flask

from protocol import Batch, decode_ack
from protocol.model import Outcome, Report
from server_sync.models import device_commands
from tests.server_sync.admin_helpers import admin_client, databox_of, outcome, parked
from tests.server_sync.conftest import Wire

SENT_MS = 1_700_000_000_000


def _report(*outcomes: Outcome, sent_ms: int = SENT_MS, **reasons: int) -> Report:
    box = databox_of(
        [parked(f"op-{i}", age_s=60 * i) for i in range(sum(reasons.values()))],
        counts={"parked": sum(reasons.values())},
        reasons=reasons,
    )
    return Report(sent_ms, (), box, outcomes)


def _send(wire: Wire, report: Report | None, *, version: str = "2.1") -> dict[str, object]:
    """POST a report-only batch (or a one-entry 2.0 batch); the raw ack JSON."""
    wire.sent += 1
    entries = () if report is not None else (wire.entry(wire.sent, f"t{wire.sent}", tx_count=1),)
    batch = Batch(version, f"b-{wire.sent}", wire.device_id, entries, report)
    response = wire.post(batch, headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200, response.get_data(as_text=True)
    decode_ack(response.get_data())  # what the device's decoder reads
    body = json.loads(response.get_data())
    assert isinstance(body, dict)
    return body


def test_a_command_is_resent_until_its_outcome_comes_back_once(app: Flask, wire: Wire) -> None:
    boss = admin_client(app)
    made = boss.command(wire.device_id, {"kind": "discard", "op_id": "op-0", "reason": "dup"})
    command_id = made.json["command_id"]  # type: ignore[index]
    wanted = [{"command_id": command_id, "kind": "discard", "op_id": "op-0", "reason": "dup"}]
    assert _send(wire, _report(too_long=1))["commands"] == wanted
    assert _send(wire, _report(too_long=1))["commands"] == wanted  # no outcome yet: again
    done = outcome(command_id, new_op_id=None)
    assert "commands" not in _send(wire, _report(done, sent_ms=SENT_MS + 1))
    assert "commands" not in _send(wire, _report(done, sent_ms=SENT_MS + 2))  # replayed outcome
    listed = boss.get(f"/v1/admin/devices/{wire.device_id}/commands").json
    (command,) = listed["commands"]  # type: ignore[index]
    assert (command["state"], command["deliveries"]) == ("done", 2)


def test_the_report_keeps_the_fleet_data_box(app: Flask, wire: Wire) -> None:
    _send(wire, _report(too_long=2, invalid_value=1))
    page = admin_client(app, "viewer").get("/v1/admin/databox").json
    assert page is not None
    assert {(r["reason"], r["parked"]) for r in page["reasons"]} == {
        ("too_long", 2),
        ("invalid_value", 1),
    }
    assert [e["op_id"] for e in page["entries"]] == ["op-2", "op-1", "op-0"]
    _send(wire, _report(sent_ms=SENT_MS - 1, too_long=9))  # an older report: ignored
    again = admin_client(app, "viewer", "v2").get("/v1/admin/databox").json
    assert again is not None and len(again["entries"]) == 3


def test_a_2_0_device_never_gets_commands(app: Flask, wire: Wire, engine: sa.Engine) -> None:
    admin_client(app).command(wire.device_id, {"kind": "resubmit", "op_id": "op-0"})
    body = _send(wire, None, version="2.0")
    assert "commands" not in body
    with engine.connect() as conn:
        assert conn.execute(sa.select(device_commands.c.state)).scalars().all() == ["pending"]


def test_every_command_the_api_accepts_is_one_the_device_decodes(app: Flask, wire: Wire) -> None:
    boss = admin_client(app)
    reasons = ["r", "x" * 64, "重复录入：客户已存在", "emoji 🙂 and \u202e bidi", " padded "]
    for i, reason in enumerate(reasons):
        made = boss.command(wire.device_id, {"kind": "discard", "op_id": f"o{i}", "reason": reason})
        assert made.status_code == 201, made.json
    made = boss.command(wire.device_id, {"kind": "resubmit", "op_id": "x" * 64})
    assert made.status_code == 201
    commands = _send(wire, _report())["commands"]
    assert isinstance(commands, list) and len(commands) == len(reasons) + 1


def test_a_refused_batch_delivers_nothing(app: Flask, wire: Wire, engine: sa.Engine) -> None:
    admin_client(app).command(wire.device_id, {"kind": "resubmit", "op_id": "op-0"})
    other = Batch("2.1", "b-x", "someone-else", (), _report())
    assert wire.post(other).status_code == 403
    with engine.connect() as conn:
        row = conn.execute(sa.select(device_commands)).one()
    assert (row.state, row.deliveries) == ("pending", 0)

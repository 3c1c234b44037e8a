"""One report path: a 2.1 batch's journal, data box and command outcomes are stored by
``report.store_report`` in the batch's transaction, the ack then carries the open
commands, and a device's audit lists its commands with their outcomes."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from protocol import Ack, Batch, compress, decode_ack, encode_batch
from protocol.model import Outcome
from server_sync.models import device_commands, device_databox, journal_events

from .audit_helpers import Device, admin_token, audit_app, count, enrol


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Flask]:
    """The real app on each database."""
    with audit_app(tmp_path, request, request.param) as app:
        yield app


def post(client: FlaskClient, token: str, batch: Batch) -> Ack:
    """POST a batch as the device does; it must be answered 200."""
    response = client.post(
        "/v1/batches",
        data=compress(encode_batch(batch)),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return decode_ack(response.get_data())


def as_admin(client: FlaskClient, token: str, method: str, path: str, **kw: Any) -> Any:
    """An admin request that must succeed; its JSON answer."""
    headers = {"Authorization": f"Bearer {token}"}
    response = client.open(path, method=method, headers=headers, **kw)
    assert response.status_code in (200, 201), response.get_data(as_text=True)
    return response.json


def devices_seen(client: FlaskClient) -> float:
    """The fieldsync_devices_seen gauge of a scrape."""
    text = client.get("/metrics").get_data(as_text=True)
    line = next(x for x in text.splitlines() if x.startswith("fieldsync_devices_seen "))
    return float(line.split()[1])


def test_a_command_goes_out_in_the_ack_and_its_outcome_shows_in_the_audit(app: Flask) -> None:
    client = app.test_client()
    device_id, token = enrol(app)
    device = Device(device_id)
    admin = admin_token(app, "admin")
    assert devices_seen(client) == 0
    t = int(time.time() * 1000)

    ack = post(client, token, device.batch(t, [device.link(t - 1000, True)], parked_ages=(60,)))
    assert ack.commands == ()
    assert count(app, device_databox) == 1 and count(app, journal_events) == 1
    assert devices_seen(client) == 1  # a report-only device is seen (the audit's rollup)
    box = as_admin(client, admin, "GET", "/v1/admin/databox")
    assert [e["op_id"] for e in box["entries"]] == ["op-0"]

    body = {"kind": "discard", "op_id": "op-0", "reason": "entered twice"}
    command = as_admin(client, admin, "POST", f"/v1/admin/devices/{device_id}/commands", json=body)
    ack = post(client, token, device.batch(t + 1, [], parked_ages=(61,)))
    assert [c.command_id for c in ack.commands] == [command["command_id"]]

    # The outcome and the emptied data box arrive together: stored once, and the same
    # batch's ack no longer carries the answered command.
    answered = device.batch(t + 2, [device.discard(t + 2, "op-0")])
    assert answered.report is not None
    report = dataclasses.replace(
        answered.report, outcomes=(Outcome(command["command_id"], "done"),)
    )
    ack = post(client, token, dataclasses.replace(answered, report=report))
    assert ack.commands == ()
    assert count(app, device_databox) == 0 and count(app, device_commands) == 1

    audit = as_admin(client, admin, "GET", f"/v1/admin/devices/{device_id}/audit")
    assert audit["discarded"] == 1 and audit["parked"] == 0
    [listed] = audit["commands"]
    assert listed["command_id"] == command["command_id"]
    assert (listed["state"], listed["deliveries"]) == ("done", 1)
    assert listed["delivered_at"] is not None and listed["outcome_at"] is not None


def test_a_viewer_reads_the_audit_and_a_device_token_does_not(app: Flask) -> None:
    client = app.test_client()
    device_id, token = enrol(app)
    path = f"/v1/admin/devices/{device_id}/audit"
    assert as_admin(client, admin_token(app, "viewer"), "GET", path)["commands"] == []
    refused = client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 403 and refused.json["error"]["code"] == "device_token"
    log = as_admin(client, admin_token(app, "admin"), "GET", "/v1/admin/log")
    assert [(e["path"], e["status"]) for e in log["entries"][:2]] == [(path, 403), (path, 200)]

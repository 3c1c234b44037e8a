"""An admin's command, end to end with the real parts: the admin API on the real server,
the real SyncClient carrying it out from an ack, the outcome back in the device's audit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from client_sync import State, SyncClient
from server_sync.admins import add_admin
from tests._doubles import BAD, Enrolled, RealServer
from tests.client_sync.conftest import Link


def test_an_admins_discard_and_resubmit_reach_the_device_and_the_audit(
    make_client: Callable[..., SyncClient], link: Link, server: RealServer, device: Enrolled
) -> None:
    client = make_client([link("wifi")])
    with client.transaction():
        dropped = client.record("customers", "twice", BAD)
    with client.transaction():
        retried = client.record("customers", "again", BAD)
    client.sync_now()
    assert client.entry(dropped).state == client.entry(retried).state == State.PARKED

    with server.engine.begin() as conn:
        _, token = add_admin(conn, "ops", "admin")
    web = server.app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    path = f"/v1/admin/devices/{device.device_id}"
    sent: dict[str, Any] = {}
    for kind, op_id in (("discard", dropped), ("resubmit", retried)):
        body = {"kind": kind, "op_id": op_id, "reason": "entered twice"}
        answer = web.post(f"{path}/commands", json=body, headers=auth)
        assert answer.status_code == 201, answer.get_json()
        sent[answer.get_json()["command_id"]] = kind

    client.record("customers", "c1", {"name": "A"})  # the device's next contact
    client.sync_now()  # its ack carries both commands: carried out on the device
    assert client.entry(dropped).state == State.DISCARDED
    assert client.entry(retried).state == State.RESUBMITTED

    client.record("customers", "c2", {"name": "B"})
    client.sync_now()  # the outcomes ride in this sync's report
    audit = web.get(f"{path}/audit", headers=auth).get_json()
    listed = {c["command_id"]: (c["kind"], c["state"]) for c in audit["commands"]}
    assert listed == {cid: (kind, "done") for cid, kind in sent.items()}
    # The resubmitted entry went out in a second batch of the same pass, whose ack
    # carried both commands again (their outcomes were not reported yet): at least once
    # on the wire, exactly once on the device.
    assert all(c["deliveries"] == 2 for c in audit["commands"])
    log = client.command_log()
    assert sorted(c["command_id"] for c in log) == sorted(sent)
    assert {c["status"] for c in log} == {"done"}

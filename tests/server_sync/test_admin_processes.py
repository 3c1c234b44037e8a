"""A remote discard and a remote resubmit against a real ``fieldsync-server serve``
process: admin credential from the command line, commands over HTTP, delivered twice,
each answered and listed once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from protocol import Batch, compress, decode_ack, encode_batch
from protocol.model import Outcome, Report
from server_sync import create_engine
from server_sync.commands import commands_between
from simulations.procs import server_cli, server_process
from tests.server_sync.admin_helpers import databox_of, outcome, parked

pytestmark = pytest.mark.slow


def _sync(url: str, device_id: str, token: str, n: int, *outcomes: Outcome) -> list[str]:
    """A report-only batch from the device; the command ids its ack carries."""
    box = databox_of(
        [parked("op-a"), parked("op-b")], counts={"parked": 2}, reasons={"too_long": 2}
    )
    batch = Batch("2.1", f"b-{n}", device_id, (), Report(1_700_000_000_000 + n, (), box, outcomes))
    answer = httpx.post(
        f"{url}/v1/batches",
        content=compress(encode_batch(batch)),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return [c.command_id for c in decode_ack(answer.content).commands]


def test_remote_discard_and_resubmit_end_to_end(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'server.db'}"
    server_cli("db", "upgrade", database_url=url)
    device = json.loads(server_cli("devices", "add", "phone", "--json", database_url=url))
    admin = json.loads(
        server_cli("admins", "add", "ops", "--role", "admin", "--json", database_url=url)
    )
    start = datetime.now(UTC)
    with server_process(url, log=tmp_path / "server.log") as server:
        auth = {"Authorization": f"Bearer {admin['token']}"}
        path = f"{server.url}/v1/admin/devices/{device['device_id']}/commands"
        sent = [
            httpx.post(path, json=body, headers=auth, timeout=30)
            for body in (
                {"kind": "discard", "op_id": "op-a", "reason": "entered twice"},
                {"kind": "resubmit", "op_id": "op-b"},
            )
        ]
        assert [s.status_code for s in sent] == [201, 201]
        ids = [s.json()["command_id"] for s in sent]
        sync = lambda n, *o: _sync(server.url, device["device_id"], device["token"], n, *o)  # noqa: E731
        assert sync(1) == ids
        assert sync(2) == ids  # delivered twice: the first answer could have been lost
        answers = (outcome(ids[0]), outcome(ids[1], new_op_id="op-b2"))
        assert sync(3, *answers) == []
        assert sync(4, *answers) == []  # the same outcomes again change nothing
        listed = httpx.get(path, headers=auth, timeout=30).json()["commands"]
        stuck = httpx.get(f"{server.url}/v1/admin/databox", headers=auth, timeout=30).json()
        log = httpx.get(f"{server.url}/v1/admin/log", headers=auth, timeout=30).json()

    states = {c["command_id"]: (c["state"], c["deliveries"], c["new_op_id"]) for c in listed}
    assert states == {ids[0]: ("done", 2, None), ids[1]: ("done", 2, "op-b2")}
    assert [e["op_id"] for e in stuck["entries"]] == ["op-a", "op-b"]
    assert [(e["method"], e["status"]) for e in log["entries"]] == [
        ("GET", 200),
        ("GET", 200),
        ("POST", 201),
        ("POST", 201),
    ]
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            window = commands_between(conn, device["device_id"], start, start + timedelta(hours=1))
    finally:
        engine.dispose()
    assert sorted(c.command_id for c in window) == sorted(ids)  # each once

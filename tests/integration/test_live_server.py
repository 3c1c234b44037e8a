"""The real client against a real server process over 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

from client_sync import HttpChannel, SyncClient
from simulations.procs import LiveServer


def test_entries_cross_a_real_socket_once(
    live_server: LiveServer, raw_key: bytes, tmp_path: Path
) -> None:
    device = live_server.enrol("socket-rep")
    wifi = HttpChannel("wifi", live_server.url, device.token)
    with SyncClient(tmp_path / "o.db", raw_key, device_id=device.device_id, channels=[wifi]) as c:
        ids = []
        for t in range(70):  # 70 transactions of 10: two batches of whole transactions
            with c.transaction():
                ids += [c.record("customers", f"c{t}-{i}", {"name": "n"}) for i in range(10)]
        report = c.sync_now()
        assert (report.applied, report.remaining, report.batches) == (700, 0, 2)
        assert c.sync_now().sent == 0
    stored = live_server.ops(device.device_id)
    assert [row.op_id for row in stored] == ids

"""kill -9 in the middle of an upload: no journal event is lost, none is acknowledged early."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from client_sync import SyncClient
from protocol.codec import decode_batch
from tests._doubles import Enrolled, RealServer
from tests.client_sync.conftest import KEY, Link

#: The child: journal, record, sync through a channel that lets the real server take the
#: batch (report and all) and then kills the process before the ack is journaled.
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from client_sync import SyncClient
    from tests._doubles import Enrolled, RealServer, lenient_registry

    server_db, outbox, device_id, token = sys.argv[1:5]
    server = RealServer(Path(server_db))
    inner = server.channel(Enrolled(device_id, token))

    class KillAfterSend:
        name, metered = inner.name, inner.metered

        def send(self, batch):
            inner.send(batch)  # the server stored it; the ack never reaches the journal
            os.kill(os.getpid(), signal.SIGKILL)

    client = SyncClient(
        outbox, bytes(range(32)), device_id=device_id, channels=[KillAfterSend()],
        registry=lenient_registry(),
    )
    client.network_changed("wifi", False)
    client.network_changed("wifi", True)
    client.record("customers", "c1", {"name": "A"})
    client.sync_now()
    raise SystemExit("the child was not killed")
    """
)


def test_a_kill_during_an_upload_loses_no_event(
    tmp_path: Path, db_path: Path, server: RealServer, device: Enrolled, link: Link
) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            str(tmp_path / "server.db"),
            str(db_path),
            device.device_id,
            device.token,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, f"child exited {done.returncode}\n{done.stderr}"
    wifi = link("wifi")
    with SyncClient(db_path, KEY, device_id=device.device_id, channels=[wifi]) as client:
        before = [e["id"] for e in client.journal_events()]
        assert len(before) == 3 and all(e["acked_at"] is None for e in client.journal_events())
        client.sync_now()
        report = decode_batch(wifi.batches[0].body).report
        assert report is not None
        assert [e.id for e in report.journal][:3] == before  # the same ids, none lost
        assert all(e["acked_at"] is not None for e in client.journal_events()[:3])

"""Invariants 1 and 4 under SIGKILL: no returned record() is lost, none applied twice."""

from __future__ import annotations

import contextlib
import json
import random
import signal
import subprocess
from pathlib import Path

from client_sync import HttpChannel, SyncClient
from simulations.job import DeviceJob, Workload
from simulations.job import rep_command as job_command
from simulations.procs import Enrolment, LiveServer

KILLS = 50


def rep_command(
    server: LiveServer, device: Enrolment, key: bytes, tmp: Path, entries: int, drain: bool = True
) -> list[str]:
    job = DeviceJob(
        db=str(tmp / "outbox.db"),
        key_hex=key.hex(),
        device_id=device.device_id,
        token=device.token,
        url=server.url,
        ledger=str(tmp / "ledger.txt"),
        workload=Workload(entries=entries),
        time_scale=0.01,
        drain=drain,
    )
    return job_command(job, tmp / f"job-{entries}.json")


def run_until_killed(cmd: list[str], rng: random.Random, err: Path) -> None:
    """Start a rep, let it record and sync for a random moment, SIGKILL it.

    Its stderr goes to ``err`` (overwritten each run) and is shown if it fails.
    """
    with err.open("wb") as stderr:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr)
    assert proc.stdout is not None
    try:
        ready = proc.stdout.readline()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=rng.uniform(0.0, 0.5))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert ready, f"rep exited ({proc.returncode}) before it was ready:\n{err.read_text()}"
    assert proc.returncode == -signal.SIGKILL, f"rep died by itself:\n{err.read_text()}"


def test_sigkill_while_recording_and_syncing_loses_and_duplicates_nothing(
    live_server: LiveServer, raw_key: bytes, tmp_path: Path
) -> None:
    rng = random.Random(20261122)
    device = live_server.enrol("crash-rep")
    recording = rep_command(live_server, device, raw_key, tmp_path, 100_000, drain=False)
    for _ in range(KILLS):
        run_until_killed(recording, rng, tmp_path / "rep.stderr")

    final = subprocess.run(
        rep_command(live_server, device, raw_key, tmp_path, 0),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert final.returncode == 0, f"the final rep failed ({final.returncode}):\n{final.stderr}"
    stats = json.loads(final.stdout.splitlines()[-1])["stats"]
    assert stats.get("pending", 0) == stats.get("in_flight", 0) == 0, stats

    ledger = (tmp_path / "ledger.txt").read_text().split()
    on_server = live_server.ops(device.device_id)
    server_ids = [row.op_id for row in on_server]
    assert len(ledger) > KILLS, "the reps recorded too little for the test to mean anything"
    assert len(server_ids) == len(set(server_ids)), "an op was stored twice"
    assert set(ledger) <= set(server_ids), "an entry whose record() returned was lost"
    assert [row.seq for row in on_server] == list(range(1, len(on_server) + 1)), "seq gap"
    assert all(row.status == "applied" for row in on_server)

    wifi = HttpChannel("wifi", live_server.url, device.token)
    with SyncClient(
        tmp_path / "outbox.db", raw_key, device_id=device.device_id, channels=[wifi]
    ) as client:
        outbox = client.entries(limit=len(server_ids) + 10)
    assert {e.op_id for e in outbox} == set(server_ids), "server holds an op never recorded"
    assert {e.state for e in outbox} == {"acked"}
    print(f"{KILLS} kills, {len(ledger)} entries returned, {len(server_ids)} on the server")

"""``make demo``: reps record while the server is unreachable, then sync; nothing is lost.

Starts the sync server on embedded SQLite at 127.0.0.1, runs a few reps as
separate device processes, kills one mid-sync and restarts it, then prints per
device: recorded, applied, duplicates, parked, still pending, lost (must be 0).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import click
import sqlalchemy as sa

from client_sync import HttpChannel, SyncClient
from simulations.job import DeviceJob, Workload, rep_command
from simulations.procs import Enrolment, enrol, free_port, server_cli, server_process

#: Real seconds per simulated second: every retry wait of the reps is multiplied by
#: this, so the demo takes seconds.
TIME_SCALE = 0.02

#: What each rep records: 48 customers a (simulated) minute, about 40 a real second;
#: every 15th is too long for the server and gets parked.
WORKLOAD = Workload(entries=40, entries_per_minute=48.0, reject_every=15)


@dataclass(frozen=True, slots=True)
class Rep:
    """One simulated rep: name, enrolment, outbox key, and where its files live."""

    name: str
    device: Enrolment
    key: bytes
    home: Path

    def command(self, url: str, count: int) -> list[str]:
        """The device process's command line: its job, written to a file."""
        job = DeviceJob(
            db=str(self.home / "outbox.db"),
            key_hex=self.key.hex(),
            device_id=self.device.device_id,
            token=self.device.token,
            url=url,
            ledger=str(self.home / "ledger.txt"),
            workload=dataclasses.replace(WORKLOAD, entries=count),
            time_scale=TIME_SCALE,
        )
        return rep_command(job, self.home / "job.json")


def run_demo(workdir: Path, reps: int = 3, count: int = 40) -> int:
    """Run the demo in ``workdir``; print the table; return the number of lost entries."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    db_url = f"sqlite:///{workdir / 'server.db'}"
    server_cli("db", "upgrade", database_url=db_url)
    people = [_rep(f"rep-{i}", db_url, workdir) for i in range(1, reps + 1)]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    start = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - start:5.1f}s] {text}", flush=True)

    say(f"server is down; {reps} reps start recording {count} customers each")
    procs = {r.name: _spawn(r.command(url, count), r) for r in people}
    time.sleep(1.5)
    with server_process(db_url, port=port, log=workdir / "server.log") as server:
        say(f"server is up at {server.url} (embedded SQLite)")
        time.sleep(0.5)
        victim = people[-1]
        procs[victim.name].send_signal(signal.SIGKILL)
        procs[victim.name].wait()
        say(f"{victim.name}'s app is killed mid-sync (SIGKILL) and restarted")
        # Started again on the same job, it records what its ledger does not hold yet.
        procs[victim.name] = _spawn(victim.command(url, count), victim)
        for name, proc in procs.items():
            if proc.wait(timeout=120) != 0:
                raise click.ClickException(f"{name} failed; see {workdir / name}/rep.log")
        say("every rep has drained; checking the server against each rep's ledger")
        rows = [_tally(r, server.ops(r.device.device_id), url) for r in people]
    _print_table(rows)
    return sum(int(row["lost"]) for row in rows)


def _rep(name: str, db_url: str, workdir: Path) -> Rep:
    home = workdir / name
    home.mkdir()
    return Rep(name, enrol(name, db_url), os.urandom(32), home)


def _spawn(cmd: list[str], rep: Rep) -> subprocess.Popen[bytes]:
    log = (rep.home / "rep.log").open("ab")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def _tally(
    rep: Rep, on_server: Sequence[sa.Row[tuple[str, int, str]]], url: str
) -> dict[str, int | str]:
    ledger = set((rep.home / "ledger.txt").read_text().split())
    stored = {row.op_id: row.status for row in on_server}
    wifi = HttpChannel("wifi", url, rep.device.token)
    with SyncClient(rep.home / "outbox.db", rep.key, device_id=rep.device.device_id,
                    channels=[wifi]) as client:  # fmt: skip
        stats = client.stats()
        acked = client.entries(state="acked", limit=1_000_000)
    return {
        "device": rep.name,
        "recorded": len(ledger),
        "applied": sum(status == "applied" for status in stored.values()),
        "duplicates": sum(e.status == "duplicate" for e in acked),
        "parked": stats.get("parked", 0),
        "pending": stats.get("pending", 0) + stats.get("in_flight", 0),
        "lost": len(ledger - set(stored)),
    }


def _print_table(rows: list[dict[str, int | str]]) -> None:
    heads = ["device", "recorded", "applied", "duplicates", "parked", "pending", "lost"]
    print()
    print("  ".join(f"{h:>10}" for h in heads))
    for row in rows:
        print("  ".join(f"{row[h]!s:>10}" for h in heads))
    print()
    print("duplicates: replays the server answered from its store (applied once, not twice)")
    print("parked: entries the server rejected (an invalid entry takes the rest of its")
    print("        transaction with it), kept on the device with their reason")


@click.command()
@click.option("--workdir", default="demo-run", show_default=True, type=click.Path(path_type=Path))
@click.option("--reps", default=3, show_default=True, type=click.IntRange(1, 20))
@click.option("--count", default=40, show_default=True, type=click.IntRange(1, 10_000))
def main(workdir: Path, reps: int, count: int) -> None:
    """Run the demo and exit non-zero if anything was lost."""
    lost = run_demo(workdir, reps, count)
    print(json.dumps({"lost": lost}))
    sys.exit(1 if lost else 0)


if __name__ == "__main__":
    main()

"""One simulated rep as a real device process: record entries, sync, report.

``python -m simulations.rep JOB.json`` runs the ``DeviceJob`` in the file
(simulations/job.py). Ground truth for the harness: an entry's op_id is appended to
the job's ledger only after ``record()`` (or the whole ``transaction()``) returned,
so every op_id in the ledger is one the app was told is safe. The process may be
SIGKILLed at any time; started again on the same job, it records what its ledger
does not hold yet.

For the simulation harness it also appends JSON lines to the job's ``events``: every
send attempt (channel, outcome, error class, HTTP status, entries, milliseconds)
and, every ``sample_every`` seconds, the channel in use and the outbox depth. Entries
designed to be refused carry a ``bad-`` record id, so the harness can count them.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click

from client_sync import HttpChannel, OutboxConfig, OutgoingBatch, RetryPolicy, SyncClient
from client_sync.errors import SyncStopped
from protocol import Collection, FieldSpec, Registry, crm_registry
from protocol.errors import ClientError
from protocol.fieldtypes import String
from protocol.model import Ack

from .job import DeviceJob, Workload, read_job

#: The app build the reps run lets notes be longer than the server accepts, the way
#: a client release and a server rule drift apart in the field; those entries are
#: the ones the server must reject and the device must park.
LOOSE_NOTES = 5000


def app_registry() -> Registry:
    """The CRM registry as a slightly out-of-date app build validates it."""
    registry = crm_registry()
    customers = registry.get("customers")
    fields = dict(customers.fields)
    fields["notes"] = FieldSpec(String(LOOSE_NOTES))
    registry.register(Collection("customers", fields, customers.schema_version))
    return registry


#: Attempts per batch in one sync pass, so a drain against a dead server returns.
DRAIN_ATTEMPTS = 12


def record_workload(
    client: SyncClient,
    work: Workload,
    rng: random.Random,
    ledger: int,
    *,
    count: int,
    time_scale: float = 1.0,
) -> int:
    """Record ``count`` entries of ``work`` in transactions of tx_min..tx_max; return how many.

    ``work.entries_per_minute`` is simulated time: ``time_scale`` real seconds each.
    """
    done = 0
    started = time.monotonic()
    rate = work.entries_per_minute / time_scale if work.entries_per_minute else 0.0
    while done < count:
        size = min(rng.randint(work.tx_min, work.tx_max), count - done)
        with client.transaction():
            op_ids = [
                client.record(*_entry(rng, reject=_due(work, done + i, rng), size=work.entry_size))
                for i in range(size)
            ]
        os.write(ledger, "".join(f"{op}\n" for op in op_ids).encode())
        done += size
        if rate:
            ahead = started + done * 60.0 / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    return done


def drain(client: SyncClient, deadline_s: float) -> dict[str, int]:
    """Sync until nothing is pending or in flight, the server refuses, or the deadline."""
    deadline = time.monotonic() + deadline_s
    stats = client.stats()
    while stats.get("pending", 0) + stats.get("in_flight", 0) and time.monotonic() < deadline:
        report = client.sync_now()
        stats = client.stats()
        if isinstance(report.last_error, SyncStopped):
            break  # e.g. upgrade_required: retrying cannot help; the entries stay
    return stats


class EventLog:
    """Append-only JSON lines; one ``write`` per event, so a SIGKILL cuts at most one."""

    def __init__(self, path: Path | None) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600) if path else None

    def emit(self, event: str, **data: Any) -> None:
        if self._fd is not None:
            line = json.dumps({"t": round(time.time(), 4), "ev": event, **data})
            os.write(self._fd, (line + "\n").encode())

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class ObservedChannel:
    """A channel that logs every attempt through it, then passes the outcome on."""

    def __init__(self, inner: HttpChannel, events: EventLog) -> None:
        self.name = inner.name
        self.metered = inner.metered
        self._inner = inner
        self._events = events

    def send(self, batch: OutgoingBatch) -> Ack:
        """Send through the wrapped channel; log the attempt."""
        start = time.monotonic()
        try:
            ack = self._inner.send(batch)
        except ClientError as exc:
            self._events.emit(
                "attempt", ch=self.name, ok=False, err=type(exc).__name__,
                status=getattr(exc, "status", None), n=len(batch),
                ms=round((time.monotonic() - start) * 1000, 1),
            )  # fmt: skip
            raise
        self._events.emit(
            "attempt", ch=self.name, ok=True, n=len(batch),
            ms=round((time.monotonic() - start) * 1000, 1),
        )  # fmt: skip
        return ack

    def close(self) -> None:
        """Close the wrapped channel."""
        self._inner.close()


def sample(client: SyncClient, events: EventLog, every: float, halt: threading.Event) -> None:
    """Log the channel in use and the outbox depth every ``every`` s until ``halt``."""
    for _ in range(10_000_000):  # bounded; halt ends it
        try:
            stats = client.stats()
        except ClientError:
            return  # closed
        status = client.status()
        events.emit(
            "sample", ch=status.channel, pending=stats["pending"] + stats["in_flight"],
            parked=stats["parked"], acked=stats["acked"], stopped=status.stopped,
        )  # fmt: skip
        if halt.wait(every):
            return


def _due(work: Workload, index: int, rng: random.Random) -> bool:
    if work.reject_every > 0 and index % work.reject_every == work.reject_every - 1:
        return True
    return work.reject_share > 0 and rng.random() < work.reject_share


def _entry(rng: random.Random, reject: bool, size: int = 0) -> tuple[str, str, dict[str, Any]]:
    record_id = f"{'bad-' if reject else ''}{rng.getrandbits(64):016x}"
    phone = f"+86 13{rng.randint(0, 9)} {rng.randint(0, 9999):04d} {rng.randint(0, 9999):04d}"
    notes = "x" * (2001 if reject else size or rng.randint(50, 250))
    return (
        "customers",
        record_id,
        {"name": f"Customer {record_id[-6:]}", "phone": phone, "notes": notes},
    )


@click.command()
@click.argument("job_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def main(job_file: Path) -> None:
    """Run the device job in JOB_FILE: record, sync in the background, drain, print JSON."""
    try:
        job = read_job(job_file)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    result = run_job(job)
    print(json.dumps(result), flush=True)


def run_job(job: DeviceJob) -> dict[str, Any]:
    """Run one device job to the end; return what it recorded and how the drain ended."""
    rng = random.Random(f"{job.seed}:{job.device_id}:{os.getpid()}")
    events = EventLog(Path(job.events) if job.events else None)
    channels = [ObservedChannel(c, events) for c in _channels(job)]
    config = OutboxConfig()
    if job.protocol_version:
        config = OutboxConfig(protocol_version=job.protocol_version)
    count = max(0, job.workload.entries - _ledger_length(Path(job.ledger)))
    ledger = os.open(job.ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    halt = threading.Event()
    with SyncClient(
        job.db,
        bytes.fromhex(job.key_hex),
        device_id=job.device_id,
        channels=channels,
        registry=app_registry(),
        retry=RetryPolicy(max_attempts=DRAIN_ATTEMPTS).scaled(job.time_scale),
        config=config,
    ) as client:
        sampler = threading.Thread(
            target=sample, args=(client, events, job.sample_every, halt), daemon=True
        )
        if job.events:
            sampler.start()
        events.emit("start", version=config.protocol_version)
        client.start(interval=max(0.05, job.time_scale * 30))
        print(json.dumps({"ready": True}), flush=True)
        recorded = record_workload(
            client, job.workload, rng, ledger, count=count, time_scale=job.time_scale
        )
        events.emit("recorded", count=recorded)
        _hold(Path(job.hold_until) if job.hold_until else None, job.hold_timeout)
        client.stop()
        began = time.monotonic()
        events.emit("drain")
        stats = drain(client, job.drain_timeout) if job.drain else client.stats()
        drained = round(time.monotonic() - began, 3)
        events.emit("drained", seconds=drained, pending=stats["pending"] + stats["in_flight"])
        halt.set()
        if sampler.is_alive():
            sampler.join(5)
    os.close(ledger)
    events.close()
    return {"recorded": recorded, "stats": stats, "drain_seconds": drained}


def _channels(job: DeviceJob) -> list[HttpChannel]:
    http = [HttpChannel("wifi", job.url, job.token, timeout=job.http_timeout)]
    if job.cellular_url:
        http.append(
            HttpChannel(
                "cellular", job.cellular_url, job.token, metered=True, timeout=job.http_timeout
            )
        )
    return http


def _ledger_length(path: Path) -> int:
    """Entries the ledger holds: what earlier runs of this job already recorded."""
    try:
        return len(path.read_text().split())
    except FileNotFoundError:
        return 0


def _hold(flag: Path | None, timeout: float) -> None:
    """Wait (the background loop keeps syncing) until ``flag`` exists or ``timeout``."""
    if flag is None:
        return
    deadline = time.monotonic() + timeout
    while not flag.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())

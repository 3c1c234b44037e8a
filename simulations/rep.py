"""One simulated rep as a real device process: record entries, sync, report.

Ground truth for the harness: an entry's op_id is appended to ``--ledger`` only
after ``record()`` (or the whole ``transaction()``) returned, so every op_id in the
ledger is one the app was told is safe. The process may be SIGKILLed at any time.

For the simulation harness it also appends JSON lines to ``--events``: every send
attempt (channel, outcome, error class, HTTP status, entries, milliseconds) and, every
``--sample-every`` seconds, the channel in use and the outbox depth. Entries designed
to be refused carry a ``bad-`` record id, so the harness can count them in the outbox.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from client_sync import HttpChannel, OutboxConfig, OutgoingBatch, RetryPolicy, SyncClient
from client_sync.errors import SyncStopped
from protocol import Collection, FieldSpec, Registry, crm_registry
from protocol.errors import ClientError
from protocol.fieldtypes import String
from protocol.model import Ack

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


@dataclass(frozen=True, slots=True)
class Workload:
    """What a rep records: how many entries, how grouped, how many the server refuses.

    ``reject_every`` refuses every Nth entry, ``reject_share`` a random share; ``rate``
    is entries per minute of real time (0: as fast as the outbox takes them) and
    ``interval`` a fixed pause after each transaction; ``entry_size`` is the notes'
    length (0: 50-250 characters).
    """

    count: int
    tx_max: int = 3
    reject_every: int = 0
    interval: float = 0.0
    tx_min: int = 1
    reject_share: float = 0.0
    rate: float = 0.0
    entry_size: int = 0


def record_workload(client: SyncClient, work: Workload, rng: random.Random, ledger: int) -> int:
    """Record ``work.count`` entries in transactions of tx_min..tx_max; return how many."""
    done = 0
    started = time.monotonic()
    while done < work.count:
        size = min(rng.randint(work.tx_min, work.tx_max), work.count - done)
        with client.transaction():
            op_ids = [
                client.record(*_entry(rng, reject=_due(work, done + i, rng), size=work.entry_size))
                for i in range(size)
            ]
        os.write(ledger, "".join(f"{op}\n" for op in op_ids).encode())
        done += size
        if work.interval:
            time.sleep(work.interval)
        if work.rate:
            ahead = started + done * 60.0 / work.rate - time.monotonic()
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
@click.option("--db", "db_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--key-hex", required=True, help="Raw 256-bit outbox key, hex.")
@click.option("--device-id", required=True)
@click.option("--token", required=True)
@click.option("--url", required=True, help="Server base URL on the wifi channel.")
@click.option("--cellular-url", default=None, help="Server base URL on the cellular channel.")
@click.option("--ledger", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--count", default=0, show_default=True, help="Entries to record.")
@click.option("--tx-max", default=3, show_default=True)
@click.option("--reject-every", default=0, show_default=True, help="Every Nth entry is refused.")
@click.option("--interval", default=0.0, show_default=True, help="Seconds between transactions.")
@click.option("--tx-min", default=1, show_default=True)
@click.option("--reject-share", default=0.0, show_default=True, help="Share of entries refused.")
@click.option("--rate", default=0.0, show_default=True, help="Entries per minute (0: no pause).")
@click.option("--entry-size", default=0, show_default=True, help="Notes length (0: 50-250).")
@click.option("--retry-scale", default=1.0, show_default=True, help="Factor on every retry wait.")
@click.option("--http-timeout", default=5.0, show_default=True, help="Seconds per request.")
@click.option("--protocol-version", default=None, help="Speak this protocol version (old app).")
@click.option("--events", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--sample-every", default=0.25, show_default=True, help="Seconds between samples.")
@click.option(
    "--hold-until",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="After recording, keep syncing in the background until this file exists.",
)
@click.option("--hold-timeout", default=3600.0, show_default=True)
@click.option("--drain/--no-drain", default=True, show_default=True)
@click.option("--drain-timeout", default=60.0, show_default=True)
@click.option("--seed", default=0, show_default=True)
def main(**opts: Any) -> None:
    """Run one rep: record, sync in the background, drain, print JSON stats."""
    rng = random.Random(f"{opts['seed']}:{opts['device_id']}:{os.getpid()}")
    events = EventLog(opts["events"])
    http = [HttpChannel("wifi", opts["url"], opts["token"], timeout=opts["http_timeout"])]
    if opts["cellular_url"]:
        http.append(
            HttpChannel(
                "cellular", opts["cellular_url"], opts["token"], metered=True,
                timeout=opts["http_timeout"],
            )
        )  # fmt: skip
    channels = [ObservedChannel(c, events) for c in http]
    work = Workload(
        opts["count"], opts["tx_max"], opts["reject_every"], opts["interval"],
        tx_min=min(opts["tx_min"], opts["tx_max"]), reject_share=opts["reject_share"],
        rate=opts["rate"], entry_size=opts["entry_size"],
    )  # fmt: skip
    config = OutboxConfig()
    if opts["protocol_version"]:
        config = OutboxConfig(protocol_version=opts["protocol_version"])
    ledger = os.open(opts["ledger"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    halt = threading.Event()
    with SyncClient(
        opts["db_path"],
        bytes.fromhex(opts["key_hex"]),
        device_id=opts["device_id"],
        channels=channels,
        registry=app_registry(),
        retry=RetryPolicy(max_attempts=DRAIN_ATTEMPTS).scaled(opts["retry_scale"]),
        config=config,
    ) as client:
        sampler = threading.Thread(
            target=sample, args=(client, events, opts["sample_every"], halt), daemon=True
        )
        if opts["events"]:
            sampler.start()
        events.emit("start", version=config.protocol_version)
        client.start(interval=max(0.05, opts["retry_scale"] * 30))
        print(json.dumps({"ready": True}), flush=True)
        recorded = record_workload(client, work, rng, ledger)
        events.emit("recorded", count=recorded)
        _hold(opts["hold_until"], opts["hold_timeout"])
        client.stop()
        began = time.monotonic()
        events.emit("drain")
        stats = drain(client, opts["drain_timeout"]) if opts["drain"] else client.stats()
        drained = round(time.monotonic() - began, 3)
        events.emit("drained", seconds=drained, pending=stats["pending"] + stats["in_flight"])
        halt.set()
        if sampler.is_alive():
            sampler.join(5)
    os.close(ledger)
    events.close()
    print(json.dumps({"recorded": recorded, "stats": stats, "drain_seconds": drained}), flush=True)


def _hold(flag: Path | None, timeout: float) -> None:
    """Wait (the background loop keeps syncing) until ``flag`` exists or ``timeout``."""
    if flag is None:
        return
    deadline = time.monotonic() + timeout
    while not flag.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())

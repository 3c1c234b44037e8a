"""One simulated rep as a real device process: record entries, sync, report.

Ground truth for the harness: an entry's op_id is appended to ``--ledger`` only
after ``record()`` (or the whole ``transaction()``) returned, so every op_id in the
ledger is one the app was told is safe. The process may be SIGKILLed at any time.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from client_sync import HttpChannel, RetryPolicy, SyncClient
from protocol import Collection, FieldSpec, Registry, crm_registry
from protocol.fieldtypes import String

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
    """What a rep records: how many entries, how grouped, how many the server refuses."""

    count: int
    tx_max: int = 3
    reject_every: int = 0
    interval: float = 0.0


def record_workload(client: SyncClient, work: Workload, rng: random.Random, ledger: int) -> int:
    """Record ``work.count`` entries in transactions of 1..tx_max; return how many."""
    done = 0
    while done < work.count:
        size = min(rng.randint(1, work.tx_max), work.count - done)
        with client.transaction():
            op_ids = [client.record(*_entry(rng, reject=_due(work, done + i))) for i in range(size)]
        os.write(ledger, "".join(f"{op}\n" for op in op_ids).encode())
        done += size
        if work.interval:
            time.sleep(work.interval)
    return done


def drain(client: SyncClient, deadline_s: float) -> dict[str, int]:
    """Sync until nothing is pending or in flight, or the deadline passes."""
    deadline = time.monotonic() + deadline_s
    stats = client.stats()
    while stats.get("pending", 0) + stats.get("in_flight", 0) and time.monotonic() < deadline:
        client.sync_now()
        stats = client.stats()
    return stats


def _due(work: Workload, index: int) -> bool:
    return work.reject_every > 0 and index % work.reject_every == work.reject_every - 1


def _entry(rng: random.Random, reject: bool) -> tuple[str, str, dict[str, Any]]:
    record_id = f"{rng.getrandbits(64):016x}"
    phone = f"+86 13{rng.randint(0, 9)} {rng.randint(0, 9999):04d} {rng.randint(0, 9999):04d}"
    notes = "x" * (2001 if reject else rng.randint(50, 250))
    return (
        "customers",
        record_id,
        {"name": f"Customer {record_id[:6]}", "phone": phone, "notes": notes},
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
@click.option("--retry-scale", default=1.0, show_default=True, help="Factor on every retry wait.")
@click.option("--drain/--no-drain", default=True, show_default=True)
@click.option("--drain-timeout", default=60.0, show_default=True)
@click.option("--seed", default=0, show_default=True)
def main(**opts: Any) -> None:
    """Run one rep: record, sync in the background, drain, print JSON stats."""
    rng = random.Random(f"{opts['seed']}:{opts['device_id']}:{os.getpid()}")
    channels = [HttpChannel("wifi", opts["url"], opts["token"], timeout=5.0)]
    if opts["cellular_url"]:
        channels.append(
            HttpChannel("cellular", opts["cellular_url"], opts["token"], metered=True, timeout=5.0)
        )
    work = Workload(opts["count"], opts["tx_max"], opts["reject_every"], opts["interval"])
    ledger = os.open(opts["ledger"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with SyncClient(
        opts["db_path"],
        bytes.fromhex(opts["key_hex"]),
        device_id=opts["device_id"],
        channels=channels,
        registry=app_registry(),
        retry=RetryPolicy(max_attempts=DRAIN_ATTEMPTS).scaled(opts["retry_scale"]),
    ) as client:
        client.start(interval=max(0.05, opts["retry_scale"] * 30))
        print(json.dumps({"ready": True}), flush=True)
        recorded = record_workload(client, work, rng, ledger)
        client.stop()
        stats = drain(client, opts["drain_timeout"]) if opts["drain"] else client.stats()
    os.close(ledger)
    print(json.dumps({"recorded": recorded, "stats": stats}), flush=True)


if __name__ == "__main__":
    sys.exit(main())

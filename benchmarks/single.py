"""6. One tap, online: ``record()`` then ``sync_now()``, every byte both ways.

``bytes_single_entry_vs_naive``: a rep records one customer while the server is
reachable and the app syncs at once. Every byte of both directions is counted
(request and status lines, headers, bodies; ``CountingTransport``) for that one
sync, against the naive uploader posting the same entry as a batch of one. The
device is enrolled and its client open beforehand (setup, not measured); each
repetition is one more tap on the same client, as in the field.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Any, cast

import httpx

from client_sync import HttpChannel, SyncClient
from protocol import Entry, Kind
from protocol.codec import to_wire_entry
from simulations.procs import enrol

from . import naive
from ._common import KEY, SEED, Sizes, customer_fields, median
from ._procs import CountingTransport, fieldsync_server, naive_server


def run(sizes: Sizes, workdir: Path | None = None) -> dict[str, Any]:
    """bytes_single_entry_vs_naive and the byte counts behind it."""
    rng = random.Random(SEED)
    ours: list[float] = []
    plain: list[float] = []
    with tempfile.TemporaryDirectory(dir=workdir, prefix="fs-bench-single-") as tmp:
        base = Path(tmp)
        db_url = f"sqlite:///{base / 'server.db'}"
        with fieldsync_server(db_url) as url, naive_server(base / "naive-server.db") as naive_url:
            device = enrol("single-tap", db_url)
            transport = CountingTransport()
            channel = HttpChannel("wifi", url, device.token, transport=transport)
            with SyncClient(
                base / "outbox.db", KEY, device_id=device.device_id, channels=[channel]
            ) as client:
                for rep in range(sizes.repeats + 1):
                    before = transport.sent + transport.received
                    op_id = client.record("customers", f"c-{rep}", customer_fields(rep, rng))
                    report = client.sync_now()
                    if report.remaining:
                        raise RuntimeError(f"one-entry sync left entries: {report}")
                    entry = _wire_entry(client, op_id)
                    counted = transport.sent + transport.received - before
                    sent = _naive_bytes(base / f"naive-{rep}.db", naive_url, entry)
                    if rep:  # the first tap also pays for opening the connection: warm-up
                        ours.append(counted)
                        plain.append(sent)
    return {
        "bytes_single_entry_vs_naive": median(ours) / median(plain),
        "single_entry_bytes": median(ours),
        "naive_single_entry_bytes": median(plain),
    }


def _wire_entry(client: SyncClient, op_id: str) -> dict[str, Any]:
    """The entry as it went on the wire, for the naive uploader to send the same."""
    e = client.entry(op_id)
    entry = Entry(
        op_id=e.op_id,
        device_id=client.device_id,
        seq=e.seq,
        tx_id=e.tx_id,
        tx_count=1,  # one record() outside a transaction()
        hlc=e.hlc,
        collection=e.collection,
        record_id=e.record_id,
        kind=cast(Kind, e.kind),
        fields=e.fields,
        schema_version=e.schema_version,
    )
    return to_wire_entry(entry)


def _naive_bytes(path: Path, url: str, entry: dict[str, Any]) -> int:
    """Bytes both ways for the naive uploader sending ``entry`` alone."""
    naive.load_outbox(path, [entry])
    transport = CountingTransport()
    with httpx.Client(base_url=url, transport=transport, timeout=60) as client:
        if naive.drain(path, client) != 1:
            raise RuntimeError("the naive uploader did not send its one entry")
    return transport.sent + transport.received

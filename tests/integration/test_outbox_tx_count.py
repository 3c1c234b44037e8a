"""The outbox freezes each transaction's tx_count at commit, and upgrades layout-1 files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlcipher3

from client_sync import OutboxConfig, OutgoingBatch
from client_sync._tables import LAYOUT
from protocol import EntryInvalid
from protocol.codec import canonical_json, encode_entry
from simulations.rep import app_registry
from tests._doubles import entries_of
from tests.integration.test_inprocess import Setup, make_setup

KEY = b"k" * 32  # what Setup.client opens the outbox with


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    """The real app in this process, reached through httpx.WSGITransport."""
    made = make_setup(tmp_path)
    yield made
    made.engine.dispose()


def raw(path: Path) -> sqlcipher3.Connection:
    """A plain sqlcipher3 connection to an outbox, keyed as the outbox keys it."""
    conn = sqlcipher3.connect(str(path))
    conn.execute(f"pragma key = \"x'{KEY.hex()}'\"")
    return conn


def stored(path: Path) -> dict[str, tuple[int, int]]:
    """op_id -> (tx_count, size) as the outbox file holds them (tx_count in the bytes)."""
    conn = raw(path)
    try:
        rows = conn.execute("SELECT op_id, size, body FROM entries").fetchall()
    finally:
        conn.close()
    assert all(size == len(body) for _, size, body in rows)
    return {op: (json.loads(body)["tx_count"], size) for op, size, body in rows}


def wire_size(batch: OutgoingBatch, op_id: str) -> int:
    """Bytes of one entry in the canonical encoding of a batch."""
    (entry,) = [e for e in entries_of(batch) if e.op_id == op_id]
    return len(encode_entry(entry))


def test_each_entry_carries_its_transactions_size(setup: Setup) -> None:
    with setup.client() as client:
        single = client.record("customers", "c1", {"name": "a"})
        with client.transaction():
            trio = [client.record("customers", f"t{i}", {"name": "b"}) for i in range(3)]
        assert client.sync_now().applied == 4
    counts = stored(setup.tmp / "outbox.db")
    assert counts[single][0] == 1
    assert [counts[op][0] for op in trio] == [3, 3, 3]


def test_stored_sizes_are_exact_at_commit(setup: Setup) -> None:
    """``size`` is what the batch encoding takes: sized widest while open, exact after."""
    sent: list[OutgoingBatch] = []
    with setup.client() as client:
        with client.transaction():
            ops = [client.record("customers", f"c{i}", {"name": "n" * i}) for i in range(12)]
        batch = client._outbox.take_batch(metered=False)
        assert batch is not None
        sent.append(batch)
        client._outbox.release(batch)
    sizes = stored(setup.tmp / "outbox.db")
    for op in ops:
        assert sizes[op] == (12, wire_size(sent[0], op))


def test_a_transaction_at_the_byte_limit_still_fits_its_batch(setup: Setup) -> None:
    config = OutboxConfig(max_batch_bytes=2048)
    with setup.client(config=config) as client:
        with client.transaction():
            recorded = 0
            with pytest.raises(EntryInvalid, match="transaction takes at most"):
                for i in range(100):
                    client.record("customers", f"c{i}", {"name": "x" * 40})
                    recorded += 1
        batch = client._outbox.take_batch(metered=False)
        assert batch is not None and len(batch) == recorded
        assert len(batch.body) <= config.max_batch_bytes
        client._outbox.release(batch)
        assert client.sync_now().applied == recorded


def test_resubmitted_siblings_form_a_new_whole_transaction(setup: Setup) -> None:
    with setup.client(registry=app_registry()) as client:
        with client.transaction():
            bad = client.record("customers", "bad", {"name": "b", "notes": "x" * 2001})
            gone = client.record("customers", "gone", {"name": "c"})
            kept = client.record("customers", "kept", {"name": "d"})
        assert client.sync_now().parked == 3
        client.discard(gone, "duplicate of another customer")
        fixed = client.resubmit(bad, {"name": "b", "notes": "short now"})
        report = client.sync_now()
        assert (report.applied, report.remaining) == (2, 0)
        new_kept = client.entry(kept).replaced_by
    counts = stored(setup.tmp / "outbox.db")
    assert counts[fixed][0] == counts[new_kept or ""][0] == 2  # the server took them whole
    assert counts[bad][0] == 3


# --- layout 1 -> 3 -----------------------------------------------------------------

_LAYOUT_1 = [
    """CREATE TABLE entries (seq INTEGER NOT NULL, op_id VARCHAR NOT NULL,
    tx_id VARCHAR NOT NULL, hlc VARCHAR NOT NULL, collection VARCHAR NOT NULL,
    record_id VARCHAR NOT NULL, kind VARCHAR NOT NULL, fields TEXT NOT NULL,
    schema_version INTEGER NOT NULL, size INTEGER NOT NULL, state VARCHAR NOT NULL,
    attempts INTEGER NOT NULL, status VARCHAR, code VARCHAR, field VARCHAR,
    message TEXT, replaced_by VARCHAR, created_at FLOAT NOT NULL,
    updated_at FLOAT NOT NULL, PRIMARY KEY (seq), UNIQUE (op_id))""",
    "CREATE INDEX entries_tx ON entries (tx_id)",
    "CREATE INDEX entries_state_seq ON entries (state, seq)",
    'CREATE TABLE meta ("key" VARCHAR NOT NULL, value TEXT NOT NULL, PRIMARY KEY ("key"))',
    """CREATE TABLE audit (id INTEGER NOT NULL, at FLOAT NOT NULL, action VARCHAR NOT NULL,
    op_id VARCHAR NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL, PRIMARY KEY (id))""",
]


def _old_row(device_id: str, seq: int, tx_id: str, state: str) -> dict[str, Any]:
    """An entries row as the layout-1 code wrote it (its size without tx_count)."""
    wire = {
        "op_id": f"00000000-0000-7000-8000-{seq:012d}",
        "device_id": device_id,
        "seq": seq,
        "tx_id": tx_id,
        "hlc": f"1700000000000-{seq:05d}-{device_id}",
        "collection": "customers",
        "record_id": f"old-{seq}",
        "kind": "upsert",
        "fields": {"name": f"Old {seq}"},
        "schema_version": 1,
    }
    return {**wire, "fields": canonical_json(wire["fields"]).decode(),
            "size": len(canonical_json(wire)), "state": state}  # fmt: skip


def make_layout_1(path: Path, device_id: str) -> list[dict[str, Any]]:
    """A layout-1 outbox: an acked transaction, a pending pair and a pending single."""
    rows = [
        _old_row(device_id, 1, "tx-a", "acked"),
        _old_row(device_id, 2, "tx-b", "pending"),
        _old_row(device_id, 3, "tx-b", "in_flight"),  # a crash mid-send
        _old_row(device_id, 4, "tx-c", "pending"),
    ]
    conn = raw(path)
    try:
        for statement in _LAYOUT_1:
            conn.execute(statement)
        conn.executemany(
            "INSERT INTO entries (seq, op_id, tx_id, hlc, collection, record_id, kind, fields,"
            " schema_version, size, state, attempts, created_at, updated_at) VALUES (:seq,"
            " :op_id, :tx_id, :hlc, :collection, :record_id, :kind, :fields, :schema_version,"
            " :size, :state, 0, 1.0, 1.0)",
            rows,
        )
        conn.executemany(
            "INSERT INTO meta VALUES (?, ?)",
            [("device_id", device_id), ("next_seq", "5"),
             ("last_hlc", f"1700000000000-00004-{device_id}")],
        )  # fmt: skip
        conn.execute("pragma user_version = 1")
        conn.commit()
    finally:
        conn.close()
    return rows


def test_a_layout_1_outbox_opens_upgrades_and_syncs(setup: Setup) -> None:
    path = setup.tmp / "outbox.db"
    old = make_layout_1(path, setup.device_id)

    with setup.client() as client:
        batch = client._outbox.take_batch(metered=False)
        assert batch is not None
        client._outbox.release(batch)
        after = stored(path)
        report = client.sync_now()
        new = client.record("customers", "new", {"name": "after the upgrade"})
        assert client.sync_now().applied == 1

    conn = raw(path)
    try:
        assert conn.execute("pragma user_version").fetchone()[0] == LAYOUT
    finally:
        conn.close()
    assert [after[r["op_id"]][0] for r in old] == [1, 2, 2, 1]
    for op_id in batch.op_ids:  # the stored bytes are the bytes sent
        assert after[op_id][1] == wire_size(batch, op_id)
    assert (report.applied, report.remaining) == (3, 0)
    assert [r.op_id for r in setup.stored()] == [r["op_id"] for r in old[1:]] + [new]

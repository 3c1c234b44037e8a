"""Each entry's bytes are stored once and sent as stored; seq and HLC need no meta write."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import sqlcipher3

from client_sync import State, SyncClient
from client_sync._recording import write_floor
from client_sync._tables import FLOOR_KEY
from client_sync.errors import IllegalTransition, UnknownEntry
from conflict import hlc
from protocol import Collection, FieldSpec, Registry
from protocol.codec import canonical_json, encode_entry
from protocol.fieldtypes import Int, String
from tests._doubles import FakeClock, Offline, entries_of
from tests.client_sync.conftest import Link

KEY = bytes(range(32))
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def raw_rows(path: Path, key: bytes = KEY) -> tuple[list[Any], dict[str, str]]:
    """(seq, op_id, body) of every row and the meta table, read with a plain connection."""
    conn = sqlcipher3.connect(str(path))
    try:
        conn.execute(f"pragma key = \"x'{key.hex()}'\"")
        rows = conn.execute("SELECT seq, op_id, body FROM entries ORDER BY seq").fetchall()
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    finally:
        conn.close()
    return rows, meta


def open_client(path: Path, **kw: Any) -> SyncClient:
    kw.setdefault("channels", [Offline()])
    kw.setdefault("clock", FakeClock())
    return SyncClient(path, KEY, device_id="dev-1", **kw)


def test_the_upgrade_stores_the_bytes_the_old_release_sent_for_every_row(tmp_path: Path) -> None:
    listing = json.loads((FIXTURES / "outbox_layout2.json").read_text())
    key = bytes.fromhex((FIXTURES / "outbox_layout2.key").read_text().strip())
    path = tmp_path / "old.db"
    shutil.copyfile(FIXTURES / "outbox_layout2.db", path)
    device = listing["meta"]["device_id"]
    with SyncClient(path, key, device_id=device, channels=[Offline()], clock=FakeClock()):
        pass
    rows, meta = raw_rows(path, key)
    assert [(seq, op, body.decode()) for seq, op, body in rows] == [
        (r["seq"], r["op_id"], r["entry"]) for r in listing["rows"]
    ]
    # Layout 2's per-commit meta is gone; the rows say it all (no clock pulled back).
    assert "next_seq" not in meta and "last_hlc" not in meta and FLOOR_KEY not in meta


def test_a_batch_is_the_stored_bytes_with_the_transactions_count(
    db_path: Path, link: Link, make_client: Any
) -> None:
    wifi = link("wifi")
    client = make_client([wifi])
    with client.transaction():
        ops = [client.record("customers", f"c{i}", {"name": f"N{i}"}) for i in range(3)]
    single = client.record("customers", "c9", {"name": "Solo"})
    assert client.sync_now().applied == 4
    (batch,) = wifi.batches
    rows, meta = raw_rows(db_path)
    stored = {op: body for _, op, body in rows}
    sent = entries_of(batch)
    assert [e.op_id for e in sent] == [*ops, single]
    assert [e.tx_count for e in sent] == [3, 3, 3, 1]
    for entry in sent:
        assert encode_entry(entry) == stored[entry.op_id]  # re-encoding gives the same bytes
    assert b",".join(stored[e.op_id] for e in sent) in batch.body
    # Nothing per record in meta (the server's clock offset is the sync's).
    assert set(meta) <= {"device_id", "clock_offset_ms"}


def test_a_field_named_tx_count_is_left_alone(tmp_path: Path) -> None:
    collection = Collection(
        "odd", {"tx_count": FieldSpec(Int(0, 10_000)), "tx_id": FieldSpec(String(40))}
    )
    registry = Registry([collection])
    path = tmp_path / "o.db"
    with open_client(path, registry=registry) as client:
        with client.transaction():
            first = client.record("odd", "r1", {"tx_count": 500, "tx_id": "x"})
            client.record("odd", "r2", {"tx_count": 1})
        assert client.entry(first).fields == {"tx_count": 500, "tx_id": "x"}
    rows, _ = raw_rows(path)
    for _, _, body in rows:
        entry = json.loads(body)
        assert entry["tx_count"] == 2 and canonical_json(entry) == body


def test_seq_and_hlc_go_on_after_reopen_without_meta(db_path: Path) -> None:
    with open_client(db_path) as client:
        client.record("customers", "c1", {"name": "A"})
        last = client.record("customers", "c2", {"name": "B"})
        stamp = hlc.parse(client.entry(last).hlc)
    with open_client(db_path, clock=FakeClock(start=1_600_000_000.0)) as client:  # clock behind
        again = client.entry(client.record("customers", "c3", {"name": "C"}))
    assert again.seq == 3 and hlc.parse(again.hlc) > stamp


def test_a_floor_keeps_seq_and_hlc_when_rows_are_deleted(db_path: Path) -> None:
    """What pruning must do: write the floor, then delete; the next entry still goes on."""
    with open_client(db_path) as client:
        for i in range(3):
            last = client.record("customers", f"c{i}", {"name": "A"})
        stamp = hlc.parse(client.entry(last).hlc)
        outbox = client._outbox
        with outbox.store.write("prune") as conn:
            write_floor(conn, outbox.recorder.next_seq, outbox.recorder.last_hlc)
            conn.exec_driver_sql("DELETE FROM entries")
    with open_client(db_path, clock=FakeClock(start=1_600_000_000.0)) as client:
        again = client.entry(client.record("customers", "c9", {"name": "Z"}))
    assert again.seq == 4 and hlc.parse(again.hlc) > stamp


def test_a_pulled_back_clock_survives_a_reopen(db_path: Path) -> None:
    with open_client(db_path, clock=FakeClock(start=1_800_000_000.0)) as client:
        client.record("customers", "c1", {"name": "A"})
        back = hlc.Hlc(1_700_000_000_000, 0, "dev-1")
        client._outbox.recorder.pull_back(back)
    with open_client(db_path) as client:  # FakeClock starts at 1.7e9 s
        assert client._outbox.recorder.last_hlc == back
        again = client.entry(client.record("customers", "c2", {"name": "B"}))
    assert again.seq == 2 and hlc.parse(again.hlc).wall_ms < 1_800_000_000_000


def test_a_move_with_one_bad_row_moves_none(db_path: Path) -> None:
    with open_client(db_path) as client:
        ops = [client.record("customers", f"c{i}", {"name": "A"}) for i in range(2)]
        outbox = client._outbox
        batch = outbox.take_batch(metered=False)
        assert batch is not None and batch.op_ids == tuple(ops)
        wrong = dataclasses.replace(batch, op_ids=(*ops, "no-such-op"), seqs=(*batch.seqs, 99))
        with pytest.raises(UnknownEntry):
            outbox.release(wrong)
        outbox.release(batch)  # both were still in flight: the failed move was rolled back
        with pytest.raises(IllegalTransition, match="pending to pending"):
            outbox.release(batch)
        assert client.stats()[State.PENDING] == 2

"""An outbox written before layout 4 (ids without their seq, op_id and tx_id indexed)
opens, keeps every row, finds its old rows by id and drains; new rows' ids carry seq.

The fixture was made by tests/fixtures/make_outbox_layout3.py at commit 5da9572.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlcipher3

from client_sync import State, SyncClient
from client_sync._ids import seq_of
from client_sync._tables import IDS_FROM, LAYOUT
from client_sync.errors import UnknownEntry
from tests._doubles import FakeClock, Offline, RealServer, lenient_registry

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NAME = "outbox_layout3"
KEY = bytes.fromhex((FIXTURES / f"{NAME}.key").read_text().strip())
LISTING: dict[str, Any] = json.loads((FIXTURES / f"{NAME}.json").read_text())
ROWS: list[dict[str, Any]] = LISTING["rows"]
DEVICE = LISTING["device_id"]


@pytest.fixture
def old_outbox(tmp_path: Path) -> Path:
    """A copy of the fixture (opening an outbox writes to it)."""
    path = tmp_path / "old.db"
    shutil.copyfile(FIXTURES / f"{NAME}.db", path)
    return path


@pytest.fixture
def client(old_outbox: Path) -> Iterator[SyncClient]:
    with SyncClient(
        old_outbox, KEY, device_id=DEVICE, channels=[Offline()], clock=FakeClock()
    ) as opened:
        yield opened


def _raw(path: Path, sql: str) -> list[Any]:
    conn = sqlcipher3.connect(str(path))
    try:
        conn.execute(f"pragma key = \"x'{KEY.hex()}'\"")
        rows: list[Any] = conn.execute(sql).fetchall()
        return rows
    finally:
        conn.close()


def test_the_upgrade_keeps_every_row_and_drops_the_id_indexes(
    client: SyncClient, old_outbox: Path
) -> None:
    client.close()
    assert _raw(old_outbox, "pragma user_version") == [(LAYOUT,)]
    indexes = _raw(old_outbox, "SELECT name FROM sqlite_master WHERE tbl_name = 'entries'")
    assert sorted(n for (n,) in indexes) == ["entries", "entries_state_seq"]
    rows = _raw(old_outbox, "SELECT seq, op_id, tx_id, state, body FROM entries ORDER BY seq")
    reopened = {"in_flight": "pending"}  # the crash mid-send, recovered at open
    assert rows == [
        (r["seq"], r["op_id"], r["tx_id"], reopened.get(r["state"], r["state"]), r["body"].encode())
        for r in ROWS
    ]
    assert _raw(old_outbox, f"SELECT value FROM meta WHERE key = '{IDS_FROM}'") == [
        (str(ROWS[-1]["seq"] + 1),)
    ]


def test_old_rows_are_found_by_their_random_ids_and_new_ones_by_the_seq_they_carry(
    client: SyncClient,
) -> None:
    for row in ROWS:
        assert client.entry(row["op_id"]).seq == row["seq"]
    new = client.record("customers", "after", {"name": "After"})
    assert seq_of(new) == ROWS[-1]["seq"] + 1 == client.entry(new).seq
    for missing in (str(uuid.uuid4()), new[:-1] + ("0" if new[-1] != "0" else "1"), "x"):
        with pytest.raises(UnknownEntry):
            client.entry(missing)


def test_an_old_parked_transaction_is_resubmitted_whole(client: SyncClient) -> None:
    parked = [r for r in ROWS if r["state"] == "parked"]
    new = client.resubmit(parked[0]["op_id"], {"name": "Fixed"})
    assert [client.entry(r["op_id"]).state for r in parked] == [State.RESUBMITTED] * 2
    fresh = client.entries(after_seq=ROWS[-1]["seq"])
    assert fresh[0].op_id == new
    assert [seq_of(e.op_id) for e in fresh] == [e.seq for e in fresh]
    assert {seq_of(e.tx_id) for e in fresh} == {fresh[0].seq}  # one transaction, its first seq


def test_old_and_new_transactions_are_taken_by_tx_id(client: SyncClient) -> None:
    outbox = client._outbox
    with client.transaction() as new_tx:
        for i in range(3):
            client.record("customers", f"n-{i}", {"name": f"N {i}"})
    old_tx = next(r["tx_id"] for r in ROWS if r["seq"] == 10)
    batch = outbox.take_transactions([new_tx, old_tx], metered=False)
    assert batch is not None
    old_seqs = [r["seq"] for r in ROWS if r["tx_id"] == old_tx]
    last = ROWS[-1]["seq"]
    assert list(batch.seqs) == [*old_seqs, last + 1, last + 2, last + 3]
    assert batch.tx_ids == (old_tx, new_tx)


def test_the_old_outbox_drains_its_stored_bytes(old_outbox: Path, tmp_path: Path) -> None:
    server = RealServer(tmp_path / "server.db")
    try:
        device = server.enrol_as(DEVICE)
        with SyncClient(
            old_outbox,
            KEY,
            device_id=DEVICE,
            channels=[server.channel(device)],
            registry=lenient_registry(),
            clock=FakeClock(),
        ) as client:
            client.record("customers", "after", {"name": "After"})
            report = client.sync_now()
            assert report.remaining == 0 and report.applied == 7, report
            stats = client.stats()
        assert stats[State.ACKED] == 4 + 7 and stats[State.PARKED] == 2
    finally:
        server.close()

"""Layout 4: a layout-3 or layout-2 outbox upgrades in place, every row and value kept.

The layout-3 file is made from a fresh one by taking layout 4's additions away
(SQLite drops the columns and the table), so it holds what layout 3 held; the
layout-2 file is the shipped fixture (tests/fixtures, also test_layout2_fixture.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import sqlcipher3

from client_sync import State, SyncClient
from client_sync._tables import _LAYOUT4_COLUMNS
from protocol.reasons import Reason
from tests._doubles import BAD, Enrolled, FakeClock, Offline, lenient_registry
from tests.client_sync.conftest import KEY, Link

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _sql(path: Path, key: bytes, *statements: str) -> list[list[tuple[object, ...]]]:
    conn = sqlcipher3.connect(str(path))
    try:
        conn.execute(f"pragma key = \"x'{key.hex()}'\"")
        out = [conn.execute(s).fetchall() for s in statements]
        conn.commit()
        return out
    finally:
        conn.close()


def _to_layout3(path: Path) -> None:
    drops = [f"ALTER TABLE entries DROP COLUMN {name}" for name in reversed(_LAYOUT4_COLUMNS)]
    _sql(path, KEY, "DROP TABLE receipts", *drops, "pragma user_version = 3")


def test_a_layout3_outbox_upgrades_and_keeps_every_row(
    tmp_path: Path, link: Link, device: Enrolled
) -> None:
    path = tmp_path / "outbox.db"
    with SyncClient(
        path, KEY, device_id=device.device_id, channels=[link("wifi")],
        registry=lenient_registry(), clock=FakeClock(),
    ) as client:  # fmt: skip
        client.record("customers", "ok", {"name": "Fine"})
        bad = client.record("customers", "bad", BAD)
        client.sync_now()
        pending = client.record("customers", "later", {"name": "Later"})
        before = [(e.op_id, e.state, e.fields, e.code, e.message) for e in client.entries()]
    _to_layout3(path)
    [[(version,)], columns] = _sql(path, KEY, "pragma user_version", "pragma table_xinfo(entries)")
    assert version == 3 and "channel" not in {c[1] for c in columns}
    with SyncClient(
        path, KEY, device_id=device.device_id, channels=[link("wifi")],
        registry=lenient_registry(), clock=FakeClock(),
    ) as client:  # fmt: skip
        after = [(e.op_id, e.state, e.fields, e.code, e.message) for e in client.entries()]
        box = {e.op_id: e for e in client.databox()}
        assert after == before
        assert set(box) == {bad, pending}
        assert box[bad].code == Reason.FIELD_TOO_LONG and box[bad].channel is None
        assert client.unsynced("customers", "later") == 1
        assert client.receipt(pending).stage == "queued"
        client.sync_now()
        assert client.receipt(pending).stage == "applied"
    [[(version,)]] = _sql(path, KEY, "pragma user_version")
    assert version == 4


def test_the_layout2_fixture_upgrades_to_a_working_data_box(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    shutil.copyfile(FIXTURES / "outbox_layout2.db", path)
    key = bytes.fromhex((FIXTURES / "outbox_layout2.key").read_text().strip())
    with SyncClient(
        path, key, device_id=_device(path, key), channels=[Offline()],
        registry=lenient_registry(), clock=FakeClock(),
    ) as client:  # fmt: skip
        counts = client.databox_counts()
        parked = client.databox(state=State.PARKED)
    assert counts.states == {"pending": 6, "in_flight": 0, "parked": 2}
    assert {e.code for e in parked} <= {r.value for r in Reason}
    assert all(e.message for e in parked)


def _device(path: Path, key: bytes) -> str:
    [[(device_id,)]] = _sql(path, key, "SELECT value FROM meta WHERE key = 'device_id'")
    assert isinstance(device_id, str)
    return device_id

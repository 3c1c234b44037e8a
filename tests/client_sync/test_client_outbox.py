"""The encrypted outbox: durability, encryption, keys, seq, transactions, the data box."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlcipher3

from client_sync import OutboxConfig, State, SyncClient
from client_sync._tables import LAYOUT
from client_sync.errors import IllegalTransition, OutboxError, UnknownEntry, WrongKey
from protocol.errors import EntryInvalid
from tests._child import run_python
from tests._doubles import BAD, BAD_VERDICT, SIBLING_CODE, FakeClock, Offline
from tests.client_sync.conftest import Link

KEY = bytes(range(32))
SECRET = "Zhang Wei plaintext-canary-7341"


def customer(i: int, **extra: object) -> dict[str, object]:
    return {"name": f"Customer {i}", **extra}


def files_of(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def open_client(path: Path, key: bytes | str = KEY, **kw: object) -> SyncClient:
    kw.setdefault("device_id", "dev-1")
    kw.setdefault("channels", [Offline("wifi")])
    kw.setdefault("clock", FakeClock())
    return SyncClient(path, key, **kw)  # type: ignore[arg-type]


def digests(directory: Path) -> dict[str, str]:
    return {name: hashlib.sha256(data).hexdigest() for name, data in files_of(directory).items()}


# -- durability and encryption --------------------------------------------------------


def test_recorded_entries_survive_reopen(db_path: Path) -> None:
    with open_client(db_path) as client:
        first = client.record("customers", "c1", customer(1, phone="138 0013 8000"))
        second = client.record("leads", "l1", {"name": "Lead", "score": 40})
    with open_client(db_path) as client:
        rows = client.entries()
    assert [(e.op_id, e.seq, e.state) for e in rows] == [
        (first, 1, State.PENDING),
        (second, 2, State.PENDING),
    ]
    assert rows[0].fields["phone"] == "13800138000"  # normalised before it was stored
    assert rows[0].hlc < rows[1].hlc


def test_no_plaintext_on_disk_and_stdlib_sqlite_cannot_read_it(db_path: Path) -> None:
    with open_client(db_path) as client:
        client.record("customers", "c1", customer(1, notes=SECRET))
        while_open = files_of(db_path.parent)
        assert any(name.endswith("-wal") for name in while_open)  # WAL mode is on
        assert all(SECRET.encode() not in data for data in while_open.values())
    after = files_of(db_path.parent)
    assert all(SECRET.encode() not in data for data in after.values())
    assert not after[db_path.name].startswith(b"SQLite format 3")
    with pytest.raises(sqlite3.DatabaseError), sqlite3.connect(db_path) as plain:
        plain.execute("select * from sqlite_master").fetchall()


def test_passphrase_key_works_and_is_not_the_raw_key(db_path: Path) -> None:
    with open_client(db_path, "correct horse battery staple") as client:
        op_id = client.record("customers", "c1", customer(1))
    with open_client(db_path, "correct horse battery staple") as client:
        assert client.entry(op_id).state == State.PENDING
    with pytest.raises(WrongKey):
        open_client(db_path, KEY)


@pytest.mark.parametrize("bad", [b"short", b"x" * 33, ""])
def test_unusable_keys_are_refused_before_touching_disk(db_path: Path, bad: bytes | str) -> None:
    with pytest.raises(ValueError):
        open_client(db_path, bad)
    assert not db_path.exists()


def test_durability_pragmas_are_in_force(db_path: Path) -> None:
    with open_client(db_path) as client:
        client.record("customers", "c1", customer(1))
    conn = sqlcipher3.connect(str(db_path))
    try:
        conn.execute(f"pragma key = \"x'{KEY.hex()}'\"")
        assert conn.execute("pragma journal_mode").fetchone()[0] == "wal"
        assert conn.execute("pragma user_version").fetchone()[0] == LAYOUT
    finally:
        conn.close()


# -- the wrong key ----------------------------------------------------------------------


def test_wrong_key_raises_and_leaves_the_file_untouched(
    db_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with open_client(db_path) as client:
        client.record("customers", "c1", customer(1))
    before = digests(db_path.parent)
    assert list(before) == [db_path.name]

    with pytest.raises(WrongKey, match=f"this key does not open {db_path}") as caught:
        open_client(db_path, bytes(32))
    assert caught.value.path == str(db_path)
    assert isinstance(caught.value.__cause__, Exception)  # translated with ``from``
    assert digests(db_path.parent) == before  # same bytes, no -wal/-shm created
    assert capfd.readouterr().err == ""


def test_wrong_key_leaves_a_crashed_wal_alone(db_path: Path, tmp_path: Path) -> None:
    """A snapshot taken while the outbox was open: the file and its -wal stay as they are.

    The -shm (the WAL index, no data) may be rebuilt: see "Opening" in _outbox.py.
    """
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    with open_client(db_path) as client:
        op_id = client.record("customers", "c1", customer(1))
        for name in files_of(db_path.parent):
            shutil.copy(db_path.parent / name, crashed / name)
    before = digests(crashed)
    assert {n.rsplit(".", 1)[-1] for n in before} == {"db", "db-wal", "db-shm"}
    with pytest.raises(WrongKey):
        open_client(crashed / db_path.name, bytes(32))
    after = digests(crashed)
    assert {n: d for n, d in after.items() if not n.endswith("-shm")} == {
        n: d for n, d in before.items() if not n.endswith("-shm")
    }
    with open_client(crashed / db_path.name) as client:  # the right key still recovers it
        assert client.entry(op_id).state == State.PENDING


def test_log_silencing_pragma_runs_before_the_key(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    statements: list[str] = []
    real_connect = sqlcipher3.connect

    def traced(*args: object, **kwargs: object) -> object:
        conn = real_connect(*args, **kwargs)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(sqlcipher3, "connect", traced)
    open_client(db_path).close()
    assert statements[0].lower() == "pragma cipher_log_level = none"
    assert statements[1].lower().startswith("pragma key=")


def test_wrong_key_prints_nothing_on_stderr_in_a_fresh_process(db_path: Path) -> None:
    """SQLCipher's log level is process-wide, so only a fresh interpreter proves it."""
    with open_client(db_path) as client:
        client.record("customers", "c1", customer(1))
    script = textwrap.dedent(
        f"""
        from client_sync import SyncClient
        from client_sync.errors import WrongKey

        class Stub:
            name = "stub"
            metered = False

        try:
            SyncClient({str(db_path)!r}, bytes(32), device_id="dev-1", channels=[Stub()])
        except WrongKey as exc:
            print("wrong key:", exc)
        """
    )
    done = run_python(script)
    assert done.stdout.startswith("wrong key: this key does not open")
    assert done.stderr == ""


def test_outbox_of_another_device_is_refused(db_path: Path) -> None:
    open_client(db_path).close()
    with pytest.raises(OutboxError, match="outbox of device dev-1, not dev-2"):
        open_client(db_path, device_id="dev-2")


# -- seq, transactions, validation --------------------------------------------------------


class Boom(Exception):
    pass


def test_seq_is_gap_free_across_rolled_back_transactions_and_reopen(db_path: Path) -> None:
    with open_client(db_path) as client:
        client.record("customers", "c1", customer(1))
        with pytest.raises(Boom), client.transaction():
            client.record("customers", "c2", customer(2))
            client.record("customers", "c3", customer(3))
            raise Boom
        with pytest.raises(EntryInvalid):
            client.record("customers", "c4", {"name": "x" * 101})
        client.record("customers", "c5", customer(5))
    with open_client(db_path) as client:
        client.record("customers", "c6", customer(6))
        rows = client.entries()
    assert [e.seq for e in rows] == [1, 2, 3]
    assert [e.record_id for e in rows] == ["c1", "c5", "c6"]


def test_a_lone_record_the_store_refuses_writes_nothing_and_uses_no_seq(db_path: Path) -> None:
    """record() outside a transaction (Recorder.record_one): a failed INSERT rolls back,
    raises OutboxError, and the next record still gets the next seq and a fresh id."""
    with open_client(db_path) as client:
        client.record("customers", "c1", customer(1))
        dbapi = client._outbox.store._dbapi
        dbapi.execute(
            "CREATE TEMP TRIGGER refuse BEFORE INSERT ON main.entries"
            " WHEN NEW.seq = 2 BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
        )
        with pytest.raises(OutboxError, match="disk says no"):
            client.record("customers", "c2", customer(2))
        assert not dbapi.in_transaction
        dbapi.execute("DROP TRIGGER refuse")
        op_id = client.record("customers", "c3", customer(3))
        rows = client.entries()
        assert client.stats()["pending"] == 2
    assert [(e.seq, e.record_id) for e in rows] == [(1, "c1"), (2, "c3")]
    assert rows[1].op_id == op_id


def test_transaction_groups_records_under_one_tx_id(db_path: Path) -> None:
    with open_client(db_path) as client:
        alone = client.record("customers", "c0", customer(0))
        with client.transaction() as tx_id:
            a = client.record("customers", "c1", customer(1))
            b = client.record(
                "followups", "f1", {"customer_id": "c1", "due_at": "2026-01-02T03:04:05+08:00"}
            )
        after = client.record("customers", "c2", customer(2))
        rows = {e.op_id: e for e in client.entries()}
    assert rows[a].tx_id == rows[b].tx_id == tx_id
    assert len({rows[alone].tx_id, tx_id, rows[after].tx_id}) == 3
    assert rows[b].fields["due_at"] == "2026-01-01T19:04:05.000Z"


def test_transactions_do_not_nest(db_path: Path) -> None:
    with open_client(db_path) as client:
        with pytest.raises(OutboxError, match="do not nest"), client.transaction():
            client.record("customers", "c1", customer(1))
            with client.transaction():
                pass  # pragma: no cover
        assert client.stats()["pending"] == 0  # the outer one rolled back too


def test_a_transaction_is_invisible_until_it_commits(db_path: Path) -> None:
    def committed() -> int:
        reader = sqlcipher3.connect(str(db_path))
        try:
            reader.execute(f"pragma key = \"x'{KEY.hex()}'\"")
            return int(reader.execute("select count(*) from entries").fetchone()[0])
        finally:
            reader.close()

    with open_client(db_path) as client:
        with client.transaction():
            client.record("customers", "c1", customer(1))
            client.record("customers", "c2", customer(2))
            assert committed() == 0
        assert committed() == 2


@pytest.mark.parametrize(
    ("collection", "record_id", "fields", "kind", "code"),
    [
        ("customers", "c1", {"name": "x" * 101}, "upsert", "too_long"),
        ("customers", "c1", {"name": "A", "phone": "12345"}, "upsert", "invalid_phone"),
        ("customers", "c1", {"nickname": "A"}, "upsert", "unknown_field"),
        ("customers", "c1", {}, "upsert", "required"),
        ("customers", "c1", {"name": "A"}, "delete", "fields_on_delete"),
        ("customers", "c1", {"name": "A"}, "merge", "unknown_kind"),
        ("customers", "", {"name": "A"}, "upsert", "invalid_record_id"),
        ("planets", "p1", {"name": "A"}, "upsert", "unknown_collection"),
    ],
)
def test_invalid_records_raise_before_anything_is_written(
    db_path: Path, collection: str, record_id: str, fields: dict[str, object], kind: str, code: str
) -> None:
    with open_client(db_path) as client:
        before = files_of(db_path.parent)
        with pytest.raises(EntryInvalid) as caught:
            client.record(collection, record_id, fields, kind)  # type: ignore[arg-type]
        assert caught.value.code == code
        assert files_of(db_path.parent) == before
        client.record("customers", "ok", customer(1))
        assert [e.seq for e in client.entries()] == [1]


def test_a_transaction_is_capped_at_what_one_batch_can_carry(db_path: Path) -> None:
    with open_client(db_path, config=OutboxConfig(max_entries=3, max_metered_entries=2)) as c:
        with c.transaction():
            for i in range(3):
                c.record("customers", f"c{i}", customer(i))
            with pytest.raises(EntryInvalid) as caught:
                c.record("customers", "c3", customer(3))
        assert caught.value.code == "transaction_too_large"
        assert c.stats()["pending"] == 3


def test_closed_client_refuses_work(db_path: Path) -> None:
    client = open_client(db_path)
    client.close()
    client.close()  # idempotent
    with pytest.raises(OutboxError, match="closed"):
        client.record("customers", "c1", customer(1))


# -- the offline data box ------------------------------------------------------------------


def park(client: SyncClient, *bad: bool) -> list[str]:
    """Record one transaction of customers, the server refusing the ``bad`` ones; sync it."""
    with client.transaction():
        ops = [
            client.record("customers", f"r{i}", BAD if b else {"name": "fine"})
            for i, b in enumerate(bad)
        ]
    client.sync_now()
    return ops


@pytest.fixture
def synced(make_client: Callable[..., SyncClient], link: Link) -> SyncClient:
    """A client on the real server, as the data box sees it after a sync."""
    return make_client([link("wifi")])


def test_parked_entries_carry_the_servers_reason(synced: SyncClient) -> None:
    bad, good = park(synced, True, False)
    parked = {e.op_id: e for e in synced.parked()}
    assert set(parked) == {bad, good}  # the whole transaction was refused
    assert (parked[bad].code, parked[bad].field) == BAD_VERDICT
    assert "2000" in (parked[bad].message or "")  # the server's own words: the limit
    assert parked[good].code == SIBLING_CODE


def test_resubmit_sends_the_fixed_entry_with_its_parked_siblings(synced: SyncClient) -> None:
    client = synced
    bad, sibling = park(client, True, False)
    with pytest.raises(EntryInvalid):
        client.resubmit(bad, {"name": "x" * 500})  # invalid fix: nothing changes
    assert client.entry(bad).state == State.PARKED

    new = client.resubmit(bad, {"name": "Fixed"})
    old = client.entry(bad)
    assert old.state == State.RESUBMITTED and old.replaced_by == new
    moved = client.entry(sibling)
    assert moved.state == State.RESUBMITTED and moved.replaced_by
    fresh = client.entry(new)
    assert fresh.fields["name"] == "Fixed" and fresh.seq == 3
    assert client.entry(moved.replaced_by).tx_id == fresh.tx_id != old.tx_id

    report = client.sync_now()
    assert (report.applied, report.parked) == (2, 0)
    assert [e.seq for e in client.entries()] == [1, 2, 3, 4]  # still gap-free
    assert [a["action"] for a in client.audit_log()] == ["resubmit", "resubmit"]
    with pytest.raises(IllegalTransition, match="acked to resubmitted"):
        client.resubmit(new, {"name": "again"})


def test_discard_is_audited_and_only_for_parked_entries(synced: SyncClient) -> None:
    client = synced
    (bad,) = park(client, True)
    with pytest.raises(ValueError):
        client.discard(bad, "  ")
    client.discard(bad, "duplicate of an existing customer")
    assert client.entry(bad).state == State.DISCARDED
    assert client.parked() == []
    (entry,) = client.audit_log()
    assert entry["action"] == "discard" and entry["op_id"] == bad
    assert entry["reason"] == "duplicate of an existing customer"
    assert entry["detail"]["fields"]["name"] == "BAD"
    assert entry["detail"]["verdict"]["code"] == BAD_VERDICT[0]

    with pytest.raises(IllegalTransition, match="discarded to discarded"):
        client.discard(bad, "again")
    pending = client.record("customers", "c9", customer(9))
    with pytest.raises(IllegalTransition, match="pending to discarded"):
        client.discard(pending, "not parked")
    with pytest.raises(UnknownEntry):
        client.discard("no-such-op", "whatever")
    assert client.stats() == {
        "pending": 1,
        "in_flight": 0,
        "acked": 0,
        "parked": 0,
        "discarded": 1,
        "resubmitted": 0,
    }

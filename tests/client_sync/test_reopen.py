"""Opening an outbox: a wrong key writes no data; every unopenable file says why.

Files are real SQLCipher outboxes in tmp_path; "killed" ones come from a forked
child that recorded and was SIGKILLed, so the -wal and -shm are a real crash's.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import traceback
from pathlib import Path

import pytest
import sqlcipher3

from client_sync import State, SyncClient
from client_sync._cipher import PAGE_SIZE, prove_key
from client_sync._outbox import Outbox
from client_sync.errors import DamagedOutbox, NotAnOutbox, OutboxError, WrongKey
from tests._doubles import FakeClock, Offline

KEY = bytes(range(32))
PASSPHRASE = "correct horse battery staple"
WRONG_KEYS: list[bytes | str] = [bytes(32), "not the passphrase"]


def open_client(path: Path, key: bytes | str = KEY, **kw: object) -> SyncClient:
    kw.setdefault("device_id", "dev-1")
    kw.setdefault("channels", [Offline()])
    kw.setdefault("clock", FakeClock())
    return SyncClient(path, key, **kw)  # type: ignore[arg-type]


def files_of(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def changed_pages(before: bytes, after: bytes) -> list[int]:
    """1-based numbers of the 4 KiB pages that differ (a size change counts the tail)."""
    size = max(len(before), len(after))
    return [
        n // PAGE_SIZE + 1
        for n in range(0, size, PAGE_SIZE)
        if before[n : n + PAGE_SIZE] != after[n : n + PAGE_SIZE]
    ]


def killed_writer(path: Path, key: bytes | str, count: int) -> list[str]:
    """Record ``count`` entries in a forked child, SIGKILL it; the op_ids it returned."""
    read_end, write_end = os.pipe()
    err = path.with_suffix(".child-stderr")
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        with err.open("w") as log:
            try:
                client = open_client(path, key)
                ids = [client.record("customers", f"c{i}", {"name": f"N{i}"}) for i in range(count)]
                os.write(write_end, " ".join(ids).encode() + b"\n")
                signal.pause()
            except BaseException:
                traceback.print_exc(file=log)
            finally:
                os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        line = pipe.readline()
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert line, f"the recording child failed:\n{err.read_text()}"
    err.unlink()
    return line.decode().split()


# -- a wrong key changes no data ------------------------------------------------------------


@pytest.mark.parametrize("wrong", WRONG_KEYS, ids=["raw", "passphrase"])
@pytest.mark.parametrize("key", [KEY, PASSPHRASE], ids=["raw-outbox", "passphrase-outbox"])
def test_a_wrong_key_after_a_kill_changes_no_page_of_the_file_or_its_wal(
    tmp_path: Path, key: bytes | str, wrong: bytes | str
) -> None:
    path = tmp_path / "outbox.db"
    ids = killed_writer(path, key, 30)
    before = files_of(tmp_path)
    assert {"outbox.db", "outbox.db-wal", "outbox.db-shm"} <= set(before), "not a crash's files"
    assert len(before["outbox.db-wal"]) > PAGE_SIZE

    with pytest.raises(WrongKey, match=f"this key does not open {path}"):
        open_client(path, wrong)

    after = files_of(tmp_path)
    assert set(after) == set(before), "a sidecar was created or deleted"
    assert changed_pages(before["outbox.db"], after["outbox.db"]) == []
    assert after["outbox.db-wal"] == before["outbox.db-wal"]
    # The -shm (the WAL index: which frame holds which page, read marks) may be rebuilt.
    with open_client(path, key) as client:
        assert [e.op_id for e in client.entries()] == ids


def test_the_read_only_probe_alone_also_leaves_a_shm_less_crash_alone(tmp_path: Path) -> None:
    """Without a -shm the probe creates one (the WAL index); the file and -wal stay."""
    path = tmp_path / "outbox.db"
    killed_writer(path, KEY, 10)
    (tmp_path / "outbox.db-shm").unlink()
    before = files_of(tmp_path)
    with pytest.raises(WrongKey):
        open_client(path, bytes(32))
    after = files_of(tmp_path)
    after.pop("outbox.db-shm", None)  # the one file a refused open may create
    assert after == before


def test_a_killed_outbox_reopens_with_every_returned_entry(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    ids = killed_writer(path, PASSPHRASE, 50)
    with open_client(path, PASSPHRASE) as client:
        assert [e.op_id for e in client.entries()] == ids
        assert {e.state for e in client.entries()} == {State.PENDING}


# -- an unopenable file says which it is, and stays as it is ---------------------------------


def make_outbox(path: Path, key: bytes | str = KEY, entries: int = 200) -> None:
    with open_client(path, key) as client, client.transaction():
        for i in range(entries):
            client.record("customers", f"c{i}", {"name": f"N{i}", "notes": "n" * 500})


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def refuse(path: Path, error: type[OutboxError], match: str, **kw: object) -> OutboxError:
    """Open ``path``; expect ``error``; check that no file in its folder changed."""
    before = files_of(path.parent)
    with pytest.raises(error, match=match) as caught:
        open_client(path, **kw).close()
    assert files_of(path.parent) == before, "a refused file (or a sidecar) was changed"
    assert caught.value.path == str(path)
    return caught.value


def test_page_1_damaged_while_other_pages_decrypt_is_damage_not_a_wrong_key(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.db"
    make_outbox(path)
    flip(path, 1000)  # inside page 1, past the salt
    err = refuse(path, DamagedOutbox, "page 1 does not decrypt, but [0-9]+ of [0-9]+ pages do")
    assert "file is not a database" in str(err.__cause__)  # translated with ``from``
    refuse(path, WrongKey, "this key does not open", key=bytes(32))  # still told apart


def test_page_1_damaged_beside_a_crashs_wal_is_damage_and_nothing_changes(
    tmp_path: Path,
) -> None:
    """The -wal's first frame damaged too (else its copy of page 1 would serve)."""
    path = tmp_path / "outbox.db"
    make_outbox(path, entries=100)
    killed_writer(path, KEY, 5)
    flip(path, 1000)
    flip(tmp_path / "outbox.db-wal", 32 + 24 + 1000)  # WAL header, frame header, page
    before = files_of(tmp_path)
    with pytest.raises(DamagedOutbox, match="page 1 does not decrypt"):
        open_client(path)
    after = files_of(tmp_path)
    assert after["outbox.db"] == before["outbox.db"]
    assert after["outbox.db-wal"] == before["outbox.db-wal"]


def test_a_damaged_later_page_is_reported_as_damage_when_read(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    make_outbox(path)
    last_page = path.stat().st_size - PAGE_SIZE
    flip(path, last_page + 100)
    before = path.read_bytes()
    with pytest.raises(DamagedOutbox, match=f"the outbox {path} is damaged"):
        client = open_client(path)  # opens or not, depending on which page the read needs
        try:
            client.entries(limit=10_000)
        finally:
            client.close()
    assert path.read_bytes() == before


def test_a_plain_sqlite_database_is_not_an_outbox(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as plain:
        plain.execute("pragma journal_mode = wal")
        plain.execute("create table customers (name text)")
        plain.execute("insert into customers values ('Zhang Wei')")
    refuse(path, NotAnOutbox, "is not an outbox: it is a plain, unencrypted SQLite database")


@pytest.mark.parametrize("size", [1, 100, 5000, 10_000])
def test_a_random_file_that_is_not_whole_pages_is_not_an_outbox(tmp_path: Path, size: int) -> None:
    path = tmp_path / "random.bin"
    path.write_bytes(os.urandom(size))
    refuse(path, NotAnOutbox, f"{size} bytes is not a whole number of 4096-byte pages")


def test_random_whole_pages_cannot_be_told_from_a_wrong_key(tmp_path: Path) -> None:
    """Without the key, an outbox is indistinguishable from random pages (docs/client.md)."""
    path = tmp_path / "random.bin"
    path.write_bytes(os.urandom(3 * PAGE_SIZE))
    refuse(path, WrongKey, "no page of it decrypts with this key")


def test_an_empty_file_is_not_an_outbox_for_tools_but_becomes_one_for_the_app(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.db"
    path.touch()
    with pytest.raises(NotAnOutbox, match="the file is empty"):
        Outbox(path, KEY, device_id=None, clock=FakeClock())
    assert path.read_bytes() == b""
    # What SQLite leaves when the app's very first open is killed: the app carries on.
    with open_client(path) as client:
        op_id = client.record("customers", "c1", {"name": "First"})
    with open_client(path) as client:
        assert client.entry(op_id).state == State.PENDING


def test_no_file_is_not_an_outbox_for_tools_and_none_is_created(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    with pytest.raises(NotAnOutbox, match="there is no such file"):
        Outbox(path, KEY, device_id=None, clock=FakeClock())
    assert list(tmp_path.iterdir()) == []


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "outbox.db"
    with pytest.raises(OutboxError, match=f"no folder {tmp_path / 'no' / 'such'}$"):
        open_client(path)
    assert list(tmp_path.iterdir()) == []


def test_a_folder_is_not_an_outbox(tmp_path: Path) -> None:
    with pytest.raises(NotAnOutbox, match="not a regular file"):
        open_client(tmp_path)


def test_another_apps_database_under_the_same_key_is_not_an_outbox(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlcipher3.connect(str(path))
    conn.execute(f"pragma key = \"x'{KEY.hex()}'\"")
    conn.execute("create table notes (body text)")
    conn.commit()
    conn.close()
    refuse(path, NotAnOutbox, "it holds other tables: notes")
    with pytest.raises(NotAnOutbox, match="it holds other tables"):
        Outbox(path, KEY, device_id=None, clock=FakeClock())


def test_an_empty_encrypted_database_is_not_an_outbox_for_tools(tmp_path: Path) -> None:
    path = tmp_path / "keyed.db"
    conn = sqlcipher3.connect(str(path))
    conn.execute(f"pragma key = \"x'{KEY.hex()}'\"")
    conn.execute("pragma user_version = 0")
    conn.execute("pragma journal_mode = wal").fetchall()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(NotAnOutbox, match="an empty encrypted database"):
        Outbox(path, KEY, device_id=None, clock=FakeClock())
    assert path.read_bytes() == before


@pytest.mark.parametrize("bad", ["a\x00b", "\ud800"], ids=["nul", "lone-surrogate"])
def test_unusable_passphrases_are_refused_before_touching_disk(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="passphrase"):
        open_client(tmp_path / "outbox.db", bad)
    assert list(tmp_path.iterdir()) == []


# -- a hot rollback journal (never an outbox's; proven by page 1's HMAC) ----------------------


def hot_journal(path: Path) -> None:
    """A rollback-mode SQLCipher file whose writer died mid-transaction (a hot -journal)."""
    key_sql = f"pragma key = \"x'{KEY.hex()}'\""
    conn = sqlcipher3.connect(str(path), isolation_level=None)
    conn.execute(key_sql)
    conn.execute("create table t (a text)")
    conn.execute("begin")
    conn.executemany("insert into t values (?)", [("x" * 500,)] * 500)
    conn.execute("commit")
    conn.close()
    _in_a_killed_child(path, key_sql)
    assert (path.parent / (path.name + "-journal")).stat().st_size > 0


def _in_a_killed_child(path: Path, key_sql: str) -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            conn = sqlcipher3.connect(str(path), isolation_level=None)
            conn.execute(key_sql)
            conn.execute("pragma cache_size = 5")  # spill changed pages into the file
            conn.execute("begin")
            conn.execute("update t set a = 'y'")
            os.write(write_end, b"r")
            signal.pause()
        finally:
            os._exit(1)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        pipe.read(1)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


@pytest.mark.parametrize(
    ("key", "expect"),
    [(KEY, None), (bytes(32), WrongKey)],
    ids=["right key", "wrong key"],
)
def test_a_hot_journal_is_proven_by_page_1_and_left_alone(
    tmp_path: Path, key: bytes, expect: type[OutboxError] | None
) -> None:
    path = tmp_path / "rollback.db"
    hot_journal(path)
    before = files_of(tmp_path)
    quoted = f"\"x'{key.hex()}'\""
    if expect is None:
        prove_key(str(path), quoted, 1000)
    else:
        with pytest.raises(expect):
            prove_key(str(path), quoted, 1000)
    assert files_of(tmp_path) == before

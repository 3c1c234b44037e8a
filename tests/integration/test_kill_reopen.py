"""Invariant 1 and issue 7 §1: SIGKILLed mid-checkpoint, the outbox always reopens.

A parent that has imported everything forks one recording child per cycle (no
connection is open in the parent at fork time), SIGKILLs it at a random moment,
and reopens the outbox. A tiny ``wal_autocheckpoint`` makes nearly every commit
checkpoint, so many kills land while the main file alone is inconsistent (the
immutable key probe that read it without its -wal failed here within a few dozen
kills). Each child appends an op_id to the ledger only after ``record()`` (or the
whole transaction) returned, so every id in the ledger must survive every kill.
"""

from __future__ import annotations

import os
import random
import select
import signal
import time
import traceback
from pathlib import Path

import pytest

from client_sync import OutboxConfig, SyncClient
from client_sync.errors import UnknownEntry
from tests._doubles import Offline

pytestmark = pytest.mark.slow

CYCLES = 300
SEED = 20260707
KEY = bytes(range(32))
DEVICE = "kill-rep"
#: 32 pages of WAL trigger a checkpoint (SQLite's default is 1000): about every
#: other transaction checkpoints, each copying enough pages to be caught halfway.
CONFIG = OutboxConfig(wal_autocheckpoint=32)
#: Entries per transaction: 1 to this many, each with up to 2000 characters of notes.
TX_MAX = 20
#: Where a kill lands: this share while the child is still opening the outbox, ...
OPENING_SHARE = 0.15
#: ... this share the moment a checkpoint starts writing the main file (which is
#: then inconsistent on its own: the issue's reproduction), ...
CHECKPOINT_SHARE = 0.45
#: ... and the rest at a random moment up to this long after the child is ready.
MAX_DELAY_S = 0.05
#: How long to wait for that checkpoint before killing anyway.
CHECKPOINT_WAIT_S = 0.3
#: How long a child may take to open the outbox before the test gives up on it.
READY_TIMEOUT_S = 30.0


def open_client(path: Path) -> SyncClient:
    return SyncClient(
        path,
        KEY,
        device_id=DEVICE,
        channels=[Offline()],
        config=CONFIG,
    )


def record_forever(path: Path, ledger: Path, err: Path, ready: int, seed: int) -> None:
    """The child: open, say so on ``ready``, record transactions until killed."""
    code = 1
    with err.open("w") as log:
        os.dup2(log.fileno(), 2)  # SQLCipher or the interpreter may write to fd 2 too
        try:
            rng = random.Random(seed)
            out = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with open_client(path) as client:
                os.write(ready, b"r")
                for _ in range(1_000_000):  # bounded; the parent kills it long before
                    with client.transaction():
                        ids = [
                            client.record(
                                "customers",
                                f"c{rng.getrandbits(48):012x}",
                                {"name": "Kill test", "notes": "n" * rng.randint(100, 2000)},
                            )
                            for _ in range(rng.randint(1, TX_MAX))
                        ]
                    os.write(out, "".join(f"{op}\n" for op in ids).encode())
            code = 0
        except BaseException:
            traceback.print_exc(file=log)
            log.flush()
        finally:
            os._exit(code)


def kill_at_random(path: Path, ledger: Path, err: Path, rng: random.Random) -> None:
    """Fork a recording child, SIGKILL it at a random moment; fail if it died by itself."""
    read_end, write_end = os.pipe()
    seed = rng.getrandbits(32)
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        record_forever(path, ledger, err, write_end, seed)
    os.close(write_end)
    try:
        # Choosing the kill moment; nothing is asserted about time.
        moment = rng.random()
        if moment < OPENING_SHARE:
            time.sleep(rng.uniform(0.0, 0.03))
        elif _ready(read_end):
            if moment < OPENING_SHARE + CHECKPOINT_SHARE:
                _until_a_checkpoint_writes(path)
            else:
                time.sleep(rng.uniform(0.0, MAX_DELAY_S))
    finally:
        os.close(read_end)
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    if not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL):
        pytest.fail(f"the recording child exited by itself ({status}):\n{err.read_text()}")


def _whole_lines(ledger: Path) -> list[str]:
    """The ledger's complete lines; a torn last line (cut by the kill) is removed.

    A SIGKILL can cut a write() short at a page boundary, leaving part of an id with no
    newline: that id was never fully reported, and the next child would append to it.
    """
    if not ledger.exists():
        return []
    data = ledger.read_bytes()
    whole = data[: data.rfind(b"\n") + 1]
    if len(whole) != len(data):
        ledger.write_bytes(whole)
    return whole.decode().split()


def _ready(read_end: int) -> bool:
    readable, _, _ = select.select([read_end], [], [], READY_TIMEOUT_S)
    return bool(readable) and os.read(read_end, 1) == b"r"


def _until_a_checkpoint_writes(path: Path) -> None:
    """Return as soon as the main file changes: only a checkpoint writes it (WAL mode)."""
    before = _stamp(path)
    deadline = time.monotonic() + CHECKPOINT_WAIT_S
    while _stamp(path) == before and time.monotonic() < deadline:
        pass  # a tight poll: a checkpoint's page writes take about a millisecond


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


def test_reopen_succeeds_after_every_kill_and_no_returned_entry_is_lost(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    path, ledger, err = tmp_path / "outbox.db", tmp_path / "ledger.txt", tmp_path / "child.err"
    returned: list[str] = []
    for cycle in range(CYCLES):
        kill_at_random(path, ledger, err, rng)
        new = _whole_lines(ledger)[len(returned) :]
        try:
            with open_client(path) as client:
                missing = [op for op in new if not _has(client, op)]
        except Exception as exc:
            pytest.fail(
                f"reopen {cycle + 1} of {CYCLES} failed: {exc!r}\n"
                f"files: {sorted(p.name for p in tmp_path.iterdir())}\n"
                f"the killed child's stderr:\n{err.read_text()}"
            )
        assert not missing, f"cycle {cycle + 1}: returned entries lost: {missing[:5]}"
        returned += new

    with open_client(path) as client:
        rows = client.entries(limit=len(returned) + 10_000)
    assert len(returned) > CYCLES, "the children recorded too little for the test to mean much"
    assert set(returned) <= {e.op_id for e in rows}
    assert [e.seq for e in rows] == list(range(1, len(rows) + 1)), "seq has a gap"
    print(f"{CYCLES} kills and reopens; {len(returned)} returned entries, {len(rows)} stored")


def _has(client: SyncClient, op_id: str) -> bool:
    try:
        client.entry(op_id)
    except UnknownEntry:
        return False
    return True

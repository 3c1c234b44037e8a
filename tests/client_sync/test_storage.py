"""The storage check: under the floor, record() raises StorageLow and stores nothing.

The proof uses a real full disk: a 2 MiB tmpfs mounted for the test (root can mount
here and in CI). Where mounting is not allowed, the same test runs on an injected
free-space probe instead (``small_disk``'s ``kind`` says which ran); it never skips.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from client_sync import OutboxConfig, State, SyncClient
from client_sync._failures import classify
from client_sync.errors import OutboxError, StorageLow
from protocol.reasons import Reason
from tests._doubles import Offline

KEY = bytes(range(32))
FLOOR = 512 * 1024


@dataclass
class SmallDisk:
    """A directory on a small filesystem; ``fill`` leaves ``free`` bytes, ``empty`` undoes."""

    directory: Path
    kind: str  # "tmpfs" or "probe"
    probe: Callable[[str], int]
    fill: Callable[[int], None]
    empty: Callable[[], None]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    """A 2 MiB tmpfs if this process may mount one, else an injected probe."""
    directory = tmp_path / "small"
    directory.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(directory)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode == 0:
        filler = directory / "filler"

        def fill(free: int) -> None:
            with filler.open("ab") as f:
                f.write(b"\0" * max(shutil.disk_usage(directory).free - free, 0))

        try:
            yield SmallDisk(
                directory,
                "tmpfs",
                lambda d: shutil.disk_usage(d).free,
                fill,
                lambda: filler.unlink(missing_ok=True),
            )
        finally:
            subprocess.run(["umount", str(directory)], check=True)
        return
    free = [2 * 1024 * 1024]

    def set_free(n: int) -> None:
        free[0] = n

    yield SmallDisk(
        directory, "probe", lambda _d: free[0], set_free, lambda: set_free(2 * 1024 * 1024)
    )


def _client(disk: SmallDisk, floor: int = FLOOR, **kw: object) -> SyncClient:
    return SyncClient(
        disk.directory / "outbox.db",
        KEY,
        device_id="dev-small",
        channels=[Offline()],
        config=OutboxConfig(min_free_bytes=floor),
        free_space=disk.probe,
        **kw,  # type: ignore[arg-type]
    )


def _digest(directory: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.glob("outbox.db*"))
        if not p.name.endswith("-shm")
    }


def test_under_the_floor_a_record_is_refused_and_nothing_stored_is_touched(
    small_disk: SmallDisk,
) -> None:
    print(f"storage check proven on: {small_disk.kind}")
    with _client(small_disk) as client:
        kept = [client.record("customers", f"c{i}", {"name": f"n{i}"}) for i in range(3)]
        refused: list[int] = []
        client._storage.on_refused = refused.append
        small_disk.fill(FLOOR // 2)
        before = _digest(small_disk.directory)
        with pytest.raises(StorageLow) as caught:
            client.record("customers", "c-late", {"name": "late"})
        with pytest.raises(StorageLow), client.transaction():
            client.record("customers", "t1", {"name": "in a transaction"})
        assert _digest(small_disk.directory) == before  # not a byte written
        assert [e.op_id for e in client.entries()] == kept
        assert client.stats()[State.PENDING] == 3
        assert caught.value.reason == Reason.STORAGE_LOW
        assert classify(caught.value) is Reason.STORAGE_LOW
        assert caught.value.free_bytes < FLOOR and caught.value.floor == FLOOR
        assert len(refused) == 2 and all(free < FLOOR for free in refused)
        small_disk.empty()
        client.record("customers", "c-after", {"name": "room again"})
        assert client.stats()[State.PENDING] == 4


def test_a_floor_of_zero_never_probes(tmp_path: Path) -> None:
    def probe(_: str) -> int:
        raise AssertionError("probed with the check off")

    with SyncClient(
        tmp_path / "o.db",
        KEY,
        device_id="dev",
        channels=[Offline()],
        config=OutboxConfig(min_free_bytes=0),
        free_space=probe,
    ) as client:
        client.record("customers", "c1", {"name": "n"})


def test_a_probe_that_fails_is_an_outbox_error_and_stores_nothing(tmp_path: Path) -> None:
    def probe(_: str) -> int:
        raise FileNotFoundError(2, "gone")

    with SyncClient(
        tmp_path / "o.db", KEY, device_id="dev", channels=[Offline()], free_space=probe
    ) as client:
        with pytest.raises(OutboxError, match="free space"):
            client.record("customers", "c1", {"name": "n"})
        assert client.entries() == []


def test_the_default_probe_reads_the_outbox_filesystem(tmp_path: Path) -> None:
    with (
        SyncClient(
            tmp_path / "o.db",
            KEY,
            device_id="dev",
            channels=[Offline()],
            config=OutboxConfig(min_free_bytes=shutil.disk_usage(tmp_path).total + 1),
        ) as client,
        pytest.raises(StorageLow),
    ):
        client.record("customers", "c1", {"name": "n"})


def test_a_negative_floor_is_refused() -> None:
    with pytest.raises(ValueError):
        OutboxConfig(min_free_bytes=-1)


def test_without_a_floor_a_full_disk_fails_the_record_and_loses_nothing_before_it(
    small_disk: SmallDisk,
) -> None:
    """What the floor prevents: SQLite's own "disk is full", at a random record."""
    if small_disk.kind != "tmpfs":
        # With an injected probe there is no real disk to fill: prove the floor path
        # once more instead, so this test still asserts something.
        small_disk.fill(0)
        with _client(small_disk) as client, pytest.raises(StorageLow):
            client.record("customers", "c1", {"name": "n"})
        return
    with _client(small_disk, floor=0) as client:
        kept = [client.record("customers", f"c{i}", {"name": "n"}) for i in range(3)]
        small_disk.fill(0)
        with pytest.raises(OutboxError):
            for i in range(1000):  # the WAL has some room left in its last page
                client.record(
                    "customers", f"more{i}", {"name": "n", "notes": os.urandom(600).hex()}
                )
        small_disk.empty()
    with _client(small_disk, floor=0) as client:
        assert [e.op_id for e in client.entries()][:3] == kept


def test_a_roomy_answer_is_trusted_for_a_second_a_tight_one_never(tmp_path: Path) -> None:
    from client_sync._storage import HEADROOM, RECHECK_S
    from tests._doubles import FakeTime

    now = FakeTime()
    free = [FLOOR + HEADROOM + 1]
    asked: list[float] = []

    def probe(_: str) -> int:
        asked.append(now())
        return free[0]

    with SyncClient(
        tmp_path / "o.db", KEY, device_id="dev", channels=[Offline()], monotonic=now,
        config=OutboxConfig(min_free_bytes=FLOOR), free_space=probe,
    ) as client:  # fmt: skip
        client.record("customers", "c1", {"name": "n"})
        free[0] = FLOOR - 1  # the disk fills up behind our back
        client.record("customers", "c2", {"name": "n"})  # the roomy answer still holds
        assert len(asked) == 1
        now.sleep(RECHECK_S)
        with pytest.raises(StorageLow):
            client.record("customers", "c3", {"name": "n"})
        free[0] = FLOOR + 1  # above the floor, but tight: asked at every record
        client.record("customers", "c4", {"name": "n"})
        client.record("customers", "c5", {"name": "n"})
        assert len(asked) == 4

"""A device whose clock runs a day ahead recovers by itself: its stamps are refused
(``clock_ahead``), it learns the server's time from the ack, restamps and resubmits, and
nothing is lost. The real client against the real create_app() (httpx.WSGITransport)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from flask import Flask

from client_sync import HttpChannel, OutgoingBatch, RetryPolicy, State, SyncClient
from client_sync._clock import OFFSET_KEY
from conflict import hlc
from protocol.constants import MAX_CLOCK_AHEAD_MS
from protocol.model import Ack, Result
from server_sync import add_device, create_app, get_record
from server_sync.extension import server_state
from tests._doubles import FakeClock, entries_of

DAY_S = 86_400.0


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'server.db'}", "TESTING": True})
    yield app
    server_state(app).engine.dispose()


def _client(app: Flask, tmp_path: Path, device: tuple[str, str], clock: FakeClock) -> SyncClient:
    device_id, token = device
    channel = HttpChannel(
        "wifi",
        "http://server",
        token,
        transport=httpx.WSGITransport(app=app),  # type: ignore[arg-type]
    )
    return SyncClient(
        tmp_path / "outbox.db",
        b"k" * 32,
        device_id=device_id,
        channels=[channel],
        clock=clock,
        sleep=lambda _s: None,
        retry=RetryPolicy(max_attempts=3),
    )


def _record(app: Flask, record_id: str) -> dict[str, object] | None:
    with server_state(app).engine.connect() as conn:
        return get_record(conn, "customers", record_id)


def test_a_device_a_day_ahead_is_restamped_and_delivers_everything(
    app: Flask, tmp_path: Path
) -> None:
    with server_state(app).engine.begin() as conn:
        device = add_device(conn, "rep")
    clock = FakeClock(start=time.time() + DAY_S, step=0.001)  # the phone's wrong clock
    with _client(app, tmp_path, device, clock) as client:
        with client.transaction():
            first = client.record("customers", "c1", {"name": "Wang Fang"})
            client.record("customers", "c2", {"name": "Li Na"})
        third = client.record("customers", "c3", {"name": "Zhao Lei"})

        report = client.sync_now()

        # The refused entries were parked with the server's reason, then restamped.
        for op_id in (first, third):
            old = client.entry(op_id)
            assert old.state is State.RESUBMITTED
            assert old.code == "clock_ahead"
            new = client.entry(old.replaced_by or "")
            assert new.state is State.ACKED
            server_now_ms = (time.time()) * 1000
            assert hlc.parse(new.hlc).wall_ms <= server_now_ms + MAX_CLOCK_AHEAD_MS
        assert report.remaining == 0
        assert client.stats()[State.PARKED] == 0
        assert [a["reason"] for a in client.audit_log()] == [
            "clock_ahead: restamped with the server's time"
        ] * 3
        for record_id in ("c1", "c2", "c3"):
            assert _record(app, record_id) is not None

        # The offset is learnt once: a new change goes through at the first try.
        client.record("customers", "c4", {"name": "Sun Li"})
        again = client.sync_now()
        assert (again.batches, again.applied, again.parked) == (1, 1, 0)
        assert _record(app, "c4") is not None
        offset = int(client._outbox.store.get_meta(OFFSET_KEY) or 0)
        assert -DAY_S * 1000 - 60_000 < offset < -DAY_S * 1000 + 60_000

    # And it survives a restart: the offset is in the outbox, no refused round first.
    with _client(app, tmp_path, device, clock) as client:
        client.record("customers", "c5", {"name": "Qian Yu"})
        after = client.sync_now()
        assert (after.batches, after.applied, after.parked) == (1, 1, 0)


class _AlwaysAhead:
    """A channel whose server refuses every stamp as ``clock_ahead`` at a fixed time."""

    name = "wifi"
    metered = False

    def __init__(self, server_time_ms: int) -> None:
        self.server_time_ms = server_time_ms
        self.sent: list[OutgoingBatch] = []

    def send(self, batch: OutgoingBatch) -> Ack:
        self.sent.append(batch)
        results = tuple(
            Result(op_id, "rejected", "clock_ahead", "hlc", "ahead") for op_id in batch.op_ids
        )
        return Ack(batch.batch_id, results, self.server_time_ms)


def test_a_restamped_entry_is_resubmitted_once_never_in_a_loop(tmp_path: Path) -> None:
    clock = FakeClock(start=1_800_000_000.0, step=0.001)
    channel = _AlwaysAhead(server_time_ms=1_700_000_000_000)
    with SyncClient(
        tmp_path / "o.db", b"k" * 32, device_id="dev-1", channels=[channel], clock=clock,
        sleep=lambda _s: None,
    ) as client:  # fmt: skip
        op_id = client.record("customers", "c1", {"name": "Wang Fang"})
        client.sync_now()
        assert len(channel.sent) == 2  # the original, then the restamped copy: no more
        replaced = client.entry(op_id).replaced_by or ""
        assert client.entry(replaced).state is State.PARKED  # left for a person
        wall = hlc.parse(entries_of(channel.sent[1])[0].hlc).wall_ms
        assert wall <= channel.server_time_ms + MAX_CLOCK_AHEAD_MS + 1_000


def test_a_clock_ahead_verdict_within_the_bound_is_left_parked(tmp_path: Path) -> None:
    clock = FakeClock(start=1_700_000_000.0, step=0.001)
    channel = _AlwaysAhead(server_time_ms=1_700_000_000_000)  # the device is right
    with SyncClient(
        tmp_path / "o.db", b"k" * 32, device_id="dev-1", channels=[channel], clock=clock,
        sleep=lambda _s: None,
    ) as client:  # fmt: skip
        op_id = client.record("customers", "c1", {"name": "Wang Fang"})
        client.sync_now()
        assert len(channel.sent) == 1
        assert client.entry(op_id).state is State.PARKED

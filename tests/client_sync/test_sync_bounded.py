"""sync_now() is bounded: it returns within its timeout with what is pending and why.

Time is a fake monotonic clock that moves only when the client sleeps, so nothing
here waits for real and nothing asserts on real durations.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from flask import Flask

from client_sync import HttpChannel, SyncClient
from client_sync.errors import LinkFailure, ServerBusy
from server_sync import add_device, create_app
from server_sync.extension import server_state
from simulations.procs import free_port
from tests._doubles import FakeTime

KEY = bytes(range(32))


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime(start=50.0)


def make_client(tmp: Path, channel: HttpChannel, clock: FakeTime, device_id: str) -> SyncClient:
    return SyncClient(
        tmp / "outbox.db", KEY, device_id=device_id, channels=[channel],
        sleep=clock.sleep, monotonic=clock,
    )  # fmt: skip


@pytest.fixture
def shedding(tmp_path: Path) -> Iterator[tuple[Flask, str, str]]:
    """The real server, shedding every batch after a device's first for ~30 years."""
    app = create_app(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'server.db'}",
            "RATE_LIMIT_DEVICE": 1,
            "RATE_LIMIT_WINDOW": 10**9,
        }
    )
    with server_state(app).engine.begin() as conn:
        device_id, token = add_device(conn, "rep")
    yield app, device_id, token
    server_state(app).engine.dispose()


def test_with_no_server_sync_now_returns_at_its_default_bound_with_the_reason(
    tmp_path: Path, clock: FakeTime
) -> None:
    nobody = HttpChannel("wifi", f"http://127.0.0.1:{free_port()}", "token")
    with make_client(tmp_path, nobody, clock, "dev-1") as client:
        for i in range(3):
            client.record("customers", f"c{i}", {"name": "n"})
        report = client.sync_now()
        # 3 s, 30 s, then a backoff wait that would end past 60 s is not begun.
        assert clock.sleeps == [3.0, 30.0] and clock.now - 50.0 <= 60.0
        assert report.timed_out and report.remaining == 3 and report.failures == 3
        assert isinstance(report.last_error, LinkFailure)
        assert report.why is not None and "3 pending after 3 failed sends: timed out" in report.why
        report = client.sync_now(timeout=600.0)  # a longer bound: more tries, still bounded
        assert report.timed_out and sum(clock.sleeps[2:]) <= 600.0
        assert report.failures == len(clock.sleeps) - 2 + 1  # one more try than waits
        assert client.stats()["pending"] == 3


def test_a_retry_after_longer_than_the_bound_is_reported_not_slept(
    tmp_path: Path, clock: FakeTime, shedding: tuple[Flask, str, str]
) -> None:
    app, device_id, token = shedding
    wifi = HttpChannel("wifi", "http://server", token, transport=httpx.WSGITransport(app=app))
    with make_client(tmp_path, wifi, clock, device_id) as client:
        client.record("customers", "c1", {"name": "n"})
        assert client.sync_now().applied == 1
        client.record("customers", "c2", {"name": "n"})
        report = client.sync_now(timeout=60.0)
        assert isinstance(report.last_error, ServerBusy) and report.last_error.status == 429
        assert (clock.sleeps, report.timed_out, report.remaining) == ([], True, 1)
        # The next call still owes the server its Retry-After: it returns without sending.
        again = client.sync_now(timeout=60.0)
        assert (clock.sleeps, again.timed_out, again.failures) == ([], True, 0)
        assert isinstance(again.last_error, ServerBusy) and again.remaining == 1


def test_a_drained_outbox_returns_within_the_bound_without_timing_out(
    tmp_path: Path, clock: FakeTime, shedding: tuple[Flask, str, str]
) -> None:
    app, device_id, token = shedding
    wifi = HttpChannel("wifi", "http://server", token, transport=httpx.WSGITransport(app=app))
    with make_client(tmp_path, wifi, clock, device_id) as client:
        client.record("customers", "c1", {"name": "n"})
        report = client.sync_now(timeout=1.0)
        assert (report.applied, report.remaining, report.timed_out, report.why) == (
            1,
            0,
            False,
            None,
        )
        with pytest.raises(ValueError, match="timeout"):
            client.sync_now(timeout=0)

"""The background sync loop: drains on record, stops promptly, never leaks its thread.

No sleep-then-assert and no stopwatch: the test waits on events the loop itself
produces (a batch handed to the channel, a wake-up taken, a retry wait announced),
each bounded only so that a regression fails instead of hanging.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

import pytest

from client_sync import RetryPolicy, State, SyncClient
from client_sync.errors import AuthRejected, LinkFailure
from tests._doubles import Enrolled, RealServer
from tests.client_sync.conftest import Link

MakeClient = Callable[..., SyncClient]

#: How long a wait may last before the test calls it a hang (never reached when green).
HANG = 30.0


class Passes(threading.Event):
    """The loop's wake-up event, counting the passes the loop has begun.

    Each pass of ``SyncClient._loop`` clears the event once before deciding what to
    do, so pass n+1 begins only after pass n has finished.
    """

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self._changed = threading.Condition()

    def clear(self) -> None:
        super().clear()
        with self._changed:
            self.count += 1
            self._changed.notify_all()

    def reach(self, count: int) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: self.count >= count, HANG), "loop stalled"


def observed(client: SyncClient) -> Passes:
    """Install a pass counter as the client's wake-up event (before ``start``)."""
    passes = Passes()
    client._wake = passes
    return passes


def settle(client: SyncClient, passes: Passes) -> None:
    """Return once a whole loop pass has run after everything done so far."""
    begun = passes.count
    client.wake()
    passes.reach(begun + 1)  # this pass began after our writes
    client.wake()
    passes.reach(begun + 2)  # so it has finished


def sync_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("fieldsync-sync")]


@pytest.fixture
def retry_waits() -> Iterator[threading.Event]:
    """Set when the retry policy announces a wait (its log line, just before sleeping)."""
    announced = threading.Event()

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "next on" in record.getMessage():
                announced.set()

    handler = Handler(logging.INFO)
    logger = logging.getLogger("client_sync.retry")
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield announced
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def test_the_loop_drains_what_is_recorded_and_stop_joins_it(
    make_client: MakeClient, link: Link, server: RealServer, device: Enrolled
) -> None:
    wifi = link("wifi")
    client = make_client([wifi], sleep=None)
    passes = observed(client)
    client.start(interval=3600)  # only record() and wake() can start a pass this soon
    assert client.status().running
    op = client.record("customers", "c1", {"name": "A"})
    settle(client, passes)
    assert client.entry(op).state == State.ACKED and server.applied(device) == {op}
    with pytest.raises(RuntimeError, match="already running"):
        client.start()
    client.stop()
    assert not client.status().running and sync_threads() == []
    client.stop()  # a second stop is a no-op


def test_stop_cuts_a_long_retry_wait_short(
    make_client: MakeClient, link: Link, retry_waits: threading.Event
) -> None:
    wifi = link("wifi", forever=LinkFailure("down"))
    hour = RetryPolicy(first_wait=3600, second_wait=3600, max_wait=3600)
    client = make_client([wifi], sleep=None, retry=hour)
    client.record("customers", "c1", {"name": "A"})
    client.start(interval=3600)
    assert retry_waits.wait(HANG), "the loop never began its retry wait"
    client.stop(timeout=HANG)  # raises if it sat out the hour-long wait
    assert len(wifi.batches) == 1  # woken by stop(), it did not try again
    assert client.stats()["pending"] == 1
    assert client.status().last_error is not None


def test_close_stops_a_running_loop(make_client: MakeClient, link: Link) -> None:
    client = make_client([link("wifi")], sleep=None)
    client.start(interval=3600)
    client.close()
    assert sync_threads() == []


def test_a_bug_in_a_channel_ends_the_loop_and_stop_reraises_it(
    make_client: MakeClient, link: Link
) -> None:
    wifi = link("wifi", script=[RuntimeError("channel bug")])
    client = make_client([wifi], sleep=None)
    client.record("customers", "c1", {"name": "A"})
    client.start(interval=3600)
    wifi.wait_for_batches(1)
    for thread in sync_threads():
        thread.join(HANG)  # the loop ends by itself; nobody asked it to stop
    assert not client.status().running
    with pytest.raises(RuntimeError, match="channel bug"):
        client.stop()
    assert client.stats()["pending"] == 1  # put back, not lost


def test_the_loop_pauses_after_a_refusal_until_a_sync_gets_through(
    make_client: MakeClient, link: Link
) -> None:
    wifi = link("wifi", script=[AuthRejected("revoked", code="device_revoked")])
    client = make_client([wifi], sleep=None)
    passes = observed(client)
    client.record("customers", "c1", {"name": "A"})  # the first pass sends it, not a report
    client.start(interval=3600)
    settle(client, passes)
    assert client.status().stopped is not None and len(wifi.batches) == 1
    client.record("customers", "c2", {"name": "B"})
    settle(client, passes)
    settle(client, passes)
    assert len(wifi.batches) == 1  # woken three times, paused: no hammering a revoked token
    assert client.sync_now().applied == 2  # e.g. after re-enrolment
    assert client.status().stopped is None
    op = client.record("customers", "c3", {"name": "C"})
    settle(client, passes)
    assert client.entry(op).state == State.ACKED
    client.stop()


def test_app_threads_record_while_the_loop_syncs(
    make_client: MakeClient, link: Link, server: RealServer, device: Enrolled
) -> None:
    wifi = link("wifi", script=["lost", LinkFailure("blip")] * 3)
    client = make_client([wifi], sleep=None, retry=RetryPolicy().scaled(0.001))
    passes = observed(client)
    client.start(interval=3600)
    recorded: list[str] = []
    lock = threading.Lock()

    def rep(n: int) -> None:
        for i in range(25):
            if i % 5 == 0:
                with client.transaction():
                    ops = [
                        client.record("customers", f"r{n}-{i}-{k}", {"name": "A"}) for k in range(3)
                    ]
            else:
                ops = [client.record("customers", f"r{n}-{i}", {"name": "A"})]
            with lock:
                recorded.extend(ops)

    reps = [threading.Thread(target=rep, args=(n,), name=f"rep-{n}") for n in range(4)]
    for t in reps:
        t.start()
    for t in reps:
        t.join()
    settle(client, passes)  # a pass that began after the last record, retrying until through
    assert client.stats()["acked"] == len(recorded)
    client.stop()
    entries = client.entries(limit=1000)
    assert [e.seq for e in entries] == list(range(1, len(recorded) + 1))
    assert {e.op_id for e in entries} == set(recorded) == server.applied(device)

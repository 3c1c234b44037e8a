"""The background sync loop: drains on record, stops promptly, never leaks its thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from client_sync import RetryPolicy, State, SyncClient
from client_sync.errors import AuthRejected, LinkFailure
from client_sync.testing import FakeServer, ScriptedChannel

MakeClient = Callable[..., SyncClient]


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def sync_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("fieldsync-sync")]


def test_the_loop_drains_what_is_recorded_and_stop_joins_it(
    make_client: MakeClient, server: FakeServer
) -> None:
    wifi = ScriptedChannel("wifi", server)
    client = make_client([wifi], sleep=None)
    client.start(interval=3600)  # only record() can wake it this soon
    assert client.status().running
    op = client.record("customers", "c1", {"name": "A"})
    eventually(lambda: client.entry(op).state == State.ACKED)
    with pytest.raises(RuntimeError, match="already running"):
        client.start()
    client.stop()
    assert not client.status().running and sync_threads() == []
    client.stop()  # a second stop is a no-op


def test_stop_cuts_a_long_retry_wait_short(make_client: MakeClient, server: FakeServer) -> None:
    wifi = ScriptedChannel("wifi", server, forever=LinkFailure("down"))
    hour = RetryPolicy(first_wait=3600, second_wait=3600, max_wait=3600)
    client = make_client([wifi], sleep=None, retry=hour)
    client.record("customers", "c1", {"name": "A"})
    client.start(interval=3600)
    eventually(lambda: len(wifi.batches) >= 1)
    started = time.monotonic()
    client.stop()
    assert time.monotonic() - started < 2.0
    assert len(wifi.batches) == 1  # woken by stop(), it did not try again
    assert client.stats()["pending"] == 1
    assert client.status().last_error is not None


def test_close_stops_a_running_loop(make_client: MakeClient, server: FakeServer) -> None:
    client = make_client([ScriptedChannel("wifi", server)], sleep=None)
    client.start(interval=3600)
    client.close()
    assert sync_threads() == []


def test_a_bug_in_a_channel_ends_the_loop_and_stop_reraises_it(
    make_client: MakeClient, server: FakeServer
) -> None:
    wifi = ScriptedChannel("wifi", server, script=[RuntimeError("channel bug")])
    client = make_client([wifi], sleep=None)
    client.record("customers", "c1", {"name": "A"})
    client.start(interval=3600)
    eventually(lambda: not client.status().running)
    with pytest.raises(RuntimeError, match="channel bug"):
        client.stop()
    assert client.stats()["pending"] == 1  # put back, not lost


def test_the_loop_pauses_after_a_refusal_until_a_sync_gets_through(
    make_client: MakeClient, server: FakeServer
) -> None:
    wifi = ScriptedChannel("wifi", server, script=[AuthRejected("revoked", code="device_revoked")])
    client = make_client([wifi], sleep=None)
    client.start(interval=0.01)
    client.record("customers", "c1", {"name": "A"})
    eventually(lambda: client.status().stopped is not None)
    client.record("customers", "c2", {"name": "B"})
    time.sleep(0.2)
    assert len(wifi.batches) == 1  # paused: no hammering with a revoked token
    assert client.sync_now().applied == 2  # e.g. after re-enrolment
    assert client.status().stopped is None
    op = client.record("customers", "c3", {"name": "C"})
    eventually(lambda: client.entry(op).state == State.ACKED)
    client.stop()


def test_app_threads_record_while_the_loop_syncs(
    make_client: MakeClient, server: FakeServer
) -> None:
    wifi = ScriptedChannel("wifi", server, script=["lost", LinkFailure("blip")] * 3)
    client = make_client([wifi], sleep=None, retry=RetryPolicy().scaled(0.001))
    client.start(interval=0.01)
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
    eventually(lambda: client.stats()["acked"] == len(recorded))
    client.stop()
    entries = client.entries(limit=1000)
    assert [e.seq for e in entries] == list(range(1, len(recorded) + 1))
    assert {e.op_id for e in entries} == set(recorded) == server.applied()

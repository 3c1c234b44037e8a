"""The drain takes batch n+1 while batch n is on the wire; sends stay one at a time, in order."""

from __future__ import annotations

from collections.abc import Callable

from client_sync import OutboxConfig, OutgoingBatch, State, SyncClient
from client_sync.errors import LinkFailure
from protocol.model import Ack
from tests._doubles import entries_of
from tests.client_sync.conftest import Link

MakeClient = Callable[..., SyncClient]
SMALL = OutboxConfig(max_entries=2, max_metered_entries=1)


def seqs(batch: OutgoingBatch) -> list[int]:
    return [e.seq for e in entries_of(batch)]


def test_the_next_batch_is_taken_while_the_current_one_is_sent(
    make_client: MakeClient, link: Link
) -> None:
    seen: list[dict[str, int]] = []

    def first(batch: OutgoingBatch) -> Ack:
        prefetch = client._drainer.prefetch
        assert prefetch is not None and prefetch._future is not None
        prefetch._future.result(timeout=30)  # the worker's take has finished
        seen.append(client.stats())
        return wifi.inner.send(batch)

    wifi = link("wifi", script=[first])
    client = make_client([wifi], config=SMALL)
    for i in range(5):
        client.record("customers", f"c{i}", {"name": f"N{i}"})
    report = client.sync_now()
    # While batch 1 was on the wire, batch 2 was already taken (in flight).
    assert seen == [{**seen[0], State.IN_FLIGHT: 4, State.PENDING: 1}]
    assert [seqs(b) for b in wifi.batches] == [[1, 2], [3, 4], [5]]
    assert (report.batches, report.applied, report.remaining) == (3, 5, 0)


def test_a_failed_send_puts_the_batch_taken_ahead_back_first(
    make_client: MakeClient, link: Link, sleeps: list[float]
) -> None:
    def fail(batch: OutgoingBatch) -> Ack:
        prefetch = client._drainer.prefetch
        assert prefetch is not None and prefetch._future is not None
        prefetch._future.result(timeout=30)
        raise LinkFailure("wifi: dropped", channel="wifi")

    wifi = link("wifi", script=[fail])
    client = make_client([wifi], config=SMALL)
    for i in range(4):
        client.record("customers", f"c{i}", {"name": f"N{i}"})
    report = client.sync_now()
    # The retry resends batch 1 before batch 2: the batch taken ahead went back to pending.
    assert [seqs(b) for b in wifi.batches] == [[1, 2], [1, 2], [3, 4]]
    assert (report.applied, report.remaining, report.failures) == (4, 0, 1)
    assert sleeps == [3.0]
    assert client.stats()[State.ACKED] == 4


def test_stopping_mid_drain_leaves_nothing_taken_ahead_in_flight(
    make_client: MakeClient, link: Link
) -> None:
    def stop_after(batch: OutgoingBatch) -> Ack:
        ack = wifi.inner.send(batch)
        client._halt.set()  # as stop()/close() do: the pass ends after this batch
        return ack

    wifi = link("wifi", script=[stop_after])
    client = make_client([wifi], config=SMALL)
    for i in range(4):
        client.record("customers", f"c{i}", {"name": f"N{i}"})
    report = client.sync_now()
    client._halt.clear()
    assert report.applied == 2
    assert client.stats()[State.IN_FLIGHT] == 0 and client.stats()[State.PENDING] == 2


def test_an_ack_is_applied_while_the_next_batch_is_on_the_wire(
    make_client: MakeClient, link: Link
) -> None:
    seen: list[tuple[bool, dict[str, int]]] = []

    def second(batch: OutgoingBatch) -> Ack:
        prefetch = client._drainer.prefetch
        assert prefetch is not None
        pending_apply = prefetch._later is not None  # batch 1's ack handed to the worker
        prefetch.settle()
        seen.append((pending_apply, client.stats()))
        return wifi.inner.send(batch)

    wifi = link("wifi")
    wifi.script = [wifi.inner.send, second]
    client = make_client([wifi], config=SMALL)
    for i in range(4):
        client.record("customers", f"c{i}", {"name": f"N{i}"})
    report = client.sync_now()
    [(pending_apply, stats)] = seen
    assert pending_apply
    assert (stats[State.ACKED], stats[State.IN_FLIGHT]) == (2, 2)
    assert (report.batches, report.applied, report.remaining) == (2, 4, 0)

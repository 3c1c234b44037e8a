"""Draining: whole transactions, channel limits, verdicts, crashes mid-send."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from client_sync import OutboxConfig, OutgoingBatch, State, SyncClient
from client_sync.errors import AckMismatch
from protocol import Collection, FieldSpec, Registry
from protocol.codec import encode_entry
from protocol.constants import (
    MAX_BATCH_BYTES,
    MAX_ENTRIES_PER_BATCH,
    MAX_ENTRIES_PER_METERED_BATCH,
)
from protocol.fieldtypes import String
from protocol.model import Ack
from tests._doubles import (
    BAD,
    BAD_VERDICT,
    Enrolled,
    RealServer,
    ScriptedChannel,
    SimulatedCrash,
    entries_of,
)
from tests.client_sync.conftest import Link

MakeClient = Callable[..., SyncClient]


def record_txs(client: SyncClient, sizes: list[int], bad: bool = False) -> list[list[str]]:
    """Record one transaction per size (``bad``: the server refuses each); return op_ids."""
    fields = BAD if bad else {"name": "ok"}
    txs = []
    for t, size in enumerate(sizes):
        with client.transaction():
            txs.append([client.record("customers", f"t{t}-{i}", fields) for i in range(size)])
    return txs


def tx_sizes(batch: OutgoingBatch) -> list[int]:
    sizes: list[int] = []
    last = None
    for entry in entries_of(batch):
        if entry.tx_id != last:
            sizes.append(0)
            last = entry.tx_id
        sizes[-1] += 1
    return sizes


def test_unmetered_batches_fill_up_to_the_protocol_limit_with_whole_transactions(
    make_client: MakeClient, link: Link
) -> None:
    wifi = link("wifi")
    client = make_client([wifi])
    record_txs(client, [300, 150, 100, 1])
    report = client.sync_now()
    assert [len(b) for b in wifi.batches] == [450, 101]
    assert [tx_sizes(b) for b in wifi.batches] == [[300, 150], [100, 1]]
    assert max(len(b) for b in wifi.batches) <= MAX_ENTRIES_PER_BATCH
    assert (report.batches, report.sent, report.applied, report.remaining) == (2, 551, 551, 0)
    seqs = [e.seq for b in wifi.batches for e in entries_of(b)]
    assert seqs == list(range(1, 552))  # oldest first, nothing skipped or repeated


def test_metered_batches_are_smaller_and_a_big_transaction_goes_alone(
    make_client: MakeClient, link: Link
) -> None:
    cellular = link("cellular", metered=True)
    client = make_client([cellular])
    record_txs(client, [60, 60, 30, 150, 10])
    client.sync_now()
    assert [tx_sizes(b) for b in cellular.batches] == [[60], [60, 30], [150], [10]]
    assert all(
        len(b) <= MAX_ENTRIES_PER_METERED_BATCH or len(tx_sizes(b)) == 1 for b in cellular.batches
    )
    assert client.stats()["acked"] == 310


def test_batches_stay_within_the_byte_limit_and_are_filled_tightly(
    make_client: MakeClient, tmp_path: Path
) -> None:
    registry = Registry([Collection("docs", {"body": FieldSpec(String(10_000), required=True)})])
    server = RealServer(tmp_path / "docs-server.db", REGISTRY=registry)
    device = server.enrol()
    wifi = ScriptedChannel(server.channel(device))
    client = make_client([wifi], registry=registry, device_id=device.device_id)
    body = "文" * 10_000  # 30 kB of UTF-8 per entry
    with client.transaction():
        for i in range(100):
            client.record("docs", f"d{i}", {"body": body})
    for i in range(100, 200):
        client.record("docs", f"d{i}", {"body": body})
    client.sync_now()
    sizes = [len(b.body) for b in wifi.batches]
    assert all(size <= MAX_BATCH_BYTES for size in sizes)
    entry_size = len(encode_entry(entries_of(wifi.batches[0])[0]))
    for size in sizes[:-1]:
        assert size + entry_size + 1 > MAX_BATCH_BYTES  # the next entry would not have fit
    assert sum(len(b) for b in wifi.batches) == 200
    assert tx_sizes(wifi.batches[0])[0] == 100
    assert len(server.applied(device)) == 200
    server.close()


def test_configured_limits_apply_and_cannot_exceed_the_protocol() -> None:
    with pytest.raises(ValueError):
        OutboxConfig(max_entries=MAX_ENTRIES_PER_BATCH + 1)
    with pytest.raises(ValueError):
        OutboxConfig(max_entries=5, max_metered_entries=6)
    with pytest.raises(ValueError):
        OutboxConfig(max_batch_bytes=MAX_BATCH_BYTES + 1)


def test_parked_entries_do_not_block_later_transactions(
    make_client: MakeClient, link: Link, server: RealServer, device: Enrolled
) -> None:
    wifi = link("wifi")
    client = make_client([wifi], config=OutboxConfig(max_entries=2, max_metered_entries=1))
    (bad,) = record_txs(client, [1], bad=True)
    good = record_txs(client, [2, 1])
    report = client.sync_now()
    assert (report.batches, report.applied, report.parked, report.remaining) == (3, 3, 1, 0)
    assert [e.op_id for e in client.parked()] == bad

    later = record_txs(client, [1])
    client.sync_now()
    assert list(wifi.batches[-1].op_ids) == later[0]  # parked not resent
    assert {op for tx in good + later for op in tx} == server.applied(device)


def test_a_lost_ack_is_retried_and_answered_as_duplicate(
    make_client: MakeClient, link: Link, sleeps: list[float]
) -> None:
    wifi = link("wifi", script=["lost"])
    client = make_client([wifi])
    record_txs(client, [2])
    record_txs(client, [1], bad=True)
    report = client.sync_now()
    assert sleeps == [3.0]
    assert (report.applied, report.duplicate, report.parked) == (0, 2, 1)
    assert client.stats()["acked"] == 2
    (parked,) = client.parked()  # a duplicate of a rejection is parked, not acked
    assert parked.status == "duplicate" and (parked.code, parked.field) == BAD_VERDICT


def test_an_ack_that_does_not_answer_the_batch_stops_and_keeps_everything(
    make_client: MakeClient, link: Link
) -> None:
    def wrong(batch: OutgoingBatch) -> Ack:
        ack = wifi.inner.send(batch)
        return Ack("another-batch", ack.results)

    wifi = link("wifi", script=[wrong])
    client = make_client([wifi])
    record_txs(client, [2])
    report = client.sync_now()
    assert isinstance(report.last_error, AckMismatch)
    assert client.stats()["pending"] == 2 and report.remaining == 2
    assert client.status().stopped is not None


def test_a_crash_mid_send_leaves_in_flight_which_reopen_returns_to_pending(
    make_client: MakeClient, link: Link
) -> None:
    wifi = link("wifi", script=["crash"])
    client = make_client([wifi])
    (ops,) = record_txs(client, [3])
    with pytest.raises(SimulatedCrash):
        client.sync_now()
    assert client.stats()["in_flight"] == 3  # nothing moved them: the "process" died
    client.close()

    again = link("wifi")
    reopened = make_client([again])
    assert reopened.stats()["pending"] == 3
    assert [reopened.entry(op).attempts for op in ops] == [1, 1, 1]
    report = reopened.sync_now()
    assert (report.duplicate, report.applied) == (3, 0)  # the server had applied them
    assert all(reopened.entry(op).state == State.ACKED for op in ops)

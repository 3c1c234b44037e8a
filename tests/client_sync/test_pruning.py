"""Pruning: acked entries and acknowledged journal events leave after retention, in chunks;
the next seq and the last HLC survive every row's deletion."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from client_sync import OutboxConfig, State, SyncClient
from client_sync._boxview import RECEIPT_RETENTION
from client_sync.errors import UnknownEntry
from conflict import hlc
from tests._doubles import BAD, FakeClock, Offline
from tests.client_sync.conftest import Link
from tests.client_sync.test_client_loop import observed, settle

MakeClient = Callable[..., SyncClient]

DAY = 24 * 3600.0


def test_acked_entries_go_after_retention_and_seq_and_hlc_go_on(
    make_client: MakeClient, link: Link, db_path: Path
) -> None:
    clock = FakeClock()
    config = OutboxConfig(prune_chunk=4)
    client = make_client([link("wifi")], clock=clock, config=config)
    for i in range(10):
        client.record("customers", f"c{i}", {"name": "A"})
    parked = client.record("customers", "bad", BAD)
    client.sync_now()
    last_stamp = hlc.parse(client.entry(parked).hlc)
    assert client.prune()["entries"] == 0  # nothing is a week old yet
    clock.now += 7 * DAY + 1
    assert client.prune()["entries"] == 10  # three chunks of at most 4
    assert [e.op_id for e in client.entries()] == [parked]  # the parked entry stays
    assert client.entry(parked).state == State.PARKED
    client.close()

    again = make_client([Offline()], clock=clock, config=config)
    new = again.entry(again.record("customers", "c99", {"name": "B"}))
    assert new.seq == 12  # after the 11 recorded, though 10 rows are gone
    assert hlc.parse(new.hlc) > last_stamp


def test_every_row_pruned_still_leaves_the_floor(
    make_client: MakeClient, link: Link, db_path: Path
) -> None:
    clock = FakeClock()
    client = make_client([link("wifi")], clock=clock)
    ops = [client.record("customers", f"c{i}", {"name": "A"}) for i in range(3)]
    client.sync_now()
    stamp = hlc.parse(client.entry(ops[-1]).hlc)
    clock.now += 8 * DAY
    assert client.prune()["entries"] == 3 and client.entries() == []
    client.close()
    again = make_client([Offline()], clock=clock)
    new = again.entry(again.record("customers", "c9", {"name": "B"}))
    assert new.seq == 4 and hlc.parse(new.hlc) > stamp


def test_journal_events_go_only_once_acknowledged_and_past_retention(
    make_client: MakeClient,
) -> None:
    clock = FakeClock()
    client = make_client([Offline("wifi")], clock=clock, config=OutboxConfig(prune_chunk=2))
    for up in (False, True, False, True, False):
        client.network_changed("wifi", up)
    events = client.journal_events()
    journal = client._journal
    journal.acknowledge([e["id"] for e in events[:3]])
    clock.now += 8 * DAY
    assert client.prune()["journal"] == 3
    assert [e["id"] for e in client.journal_events()] == [e["id"] for e in events[3:]]
    clock.now += 30 * DAY
    assert client.prune()["journal"] == 0  # never acknowledged: kept however old


def test_pruning_holds_the_store_for_one_chunk_at_a_time(
    make_client: MakeClient, link: Link
) -> None:
    clock = FakeClock()
    client = make_client([link("wifi")], clock=clock, config=OutboxConfig(prune_chunk=50))
    with client.transaction():
        for i in range(200):
            client.record("customers", f"c{i}", {"name": "A"})
    client.sync_now()
    clock.now += 8 * DAY
    store = client._outbox.store
    writes: list[str] = []
    real_write = store.write

    def counting(what: str):  # type: ignore[no-untyped-def]
        writes.append(what)
        return real_write(what)

    store.write = counting  # type: ignore[method-assign]
    assert client.prune()["entries"] == 200
    assert writes.count("prune entries") == 5  # 4 full chunks, then one that finds none


def test_learning_the_clock_offset_never_prunes_a_fresh_entry(
    make_client: MakeClient, link: Link
) -> None:
    # FakeClock starts in 2023, years behind the real server: the first ack teaches
    # the offset, so the second entry's ack is dated years later than the first's.
    clock = FakeClock()
    client = make_client([link("wifi")], clock=clock)
    client.record("customers", "c1", {"name": "A"})
    client.sync_now()
    late = client.record("customers", "c2", {"name": "B"})
    client.sync_now()
    assert client._server_clock.offset_ms > 365 * DAY * 1000
    clock.now += 8 * DAY
    assert client.prune()["entries"] == 1  # a week on the device's clock: only the first ack is old
    assert [e.op_id for e in client.entries()] == [late]


def test_the_background_loop_prunes_after_its_pass(make_client: MakeClient, link: Link) -> None:
    clock = FakeClock()
    client = make_client([link("wifi")], clock=clock, sleep=None)
    client.record("customers", "c1", {"name": "A"})
    client.sync_now()
    clock.now += 8 * DAY
    passes = observed(client)
    client.start(interval=3600)
    try:
        settle(client, passes)
    finally:
        client.stop()
    assert [e.op_id for e in client.entries()] == []  # the acked entry went, a week on


def test_receipts_outlive_their_pruned_entries_then_go_after_their_own_retention(
    make_client: MakeClient, link: Link
) -> None:
    clock = FakeClock()
    client = make_client([link("wifi")], clock=clock)
    ops = [client.record("customers", f"c{i}", {"name": "A"}) for i in range(3)]
    client.sync_now()
    clock.now += 8 * DAY
    pruned = client.prune()
    assert (pruned["entries"], pruned["receipts"]) == (3, 0)
    receipts = [client.receipt(op) for op in ops]
    assert [(r.stage, r.state) for r in receipts] == [("applied", None)] * 3  # entry gone
    clock.now += RECEIPT_RETENTION
    assert client.prune()["receipts"] == 3
    with pytest.raises(UnknownEntry):
        client.receipt(ops[0])

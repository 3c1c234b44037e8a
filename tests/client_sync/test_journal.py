"""The device journal: events in the encrypted store, links, data-box actions, clean text."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from client_sync import OutboxConfig, State, SyncClient
from client_sync._journal import message_text, name_text
from client_sync.errors import LinkFailure, StorageLow
from tests._doubles import BAD, BAD_VERDICT, Enrolled, FakeClock, Offline, RealServer
from tests.client_sync.conftest import Link

MakeClient = Callable[..., SyncClient]


def kinds(client: SyncClient) -> list[str]:
    return [e["kind"] for e in client.journal_events()]


def test_the_os_hook_journals_transitions_only_and_wakes_the_loop_when_up(
    make_client: MakeClient,
) -> None:
    clock = FakeClock(start=1_800_000_000.0, step=0.5)
    client = make_client([Offline("wifi"), Offline("cellular")], clock=clock)
    client.network_changed("wifi", False)
    client.network_changed("wifi", False)  # no change: nothing journaled
    client._wake.clear()
    client.network_changed("wifi", True)
    assert client._wake.is_set()  # the loop gets a pass as soon as the link is back
    client.network_changed("cellular", True)
    links = [(e["channel"], e["up"], e["source"]) for e in client.journal_events()]
    assert links == [("wifi", False, "os"), ("wifi", True, "os"), ("cellular", True, "os")]
    events = client.journal_events()
    assert len({e["id"] for e in events}) == 3  # each event its own id
    assert all(1_800_000_000_000 < e["at_ms"] < 1_800_000_010_000 for e in events)  # FakeClock
    with pytest.raises(ValueError, match="no channel named 'bluetooth'"):
        client.network_changed("bluetooth", True)


def test_link_states_survive_a_restart(make_client: MakeClient, db_path: Path) -> None:
    first = make_client([Offline("wifi")])
    first.network_changed("wifi", False)
    first.close()
    again = make_client([Offline("wifi")])
    again.network_changed("wifi", False)  # known down from the last run: no transition
    again.network_changed("wifi", True)
    assert [e["up"] for e in again.journal_events()] == [False, True]


def test_sync_outcomes_journal_attempts_and_link_transitions(
    make_client: MakeClient, link: Link
) -> None:
    wifi = link("wifi", script=[LinkFailure("down"), LinkFailure("down")])
    client = make_client([wifi])
    client.record("customers", "c1", {"name": "A"})
    client.sync_now()
    events = client.journal_events()
    attempts = [e for e in events if e["kind"] == "attempt"]
    assert [a["outcome"] for a in attempts] == ["network_unreachable"] * 2 + ["ok"]
    assert all(a["channel"] == "wifi" and a["entries"] == 1 for a in attempts)
    assert all(a["started_ms"] <= a["ended_ms"] and a["bytes_sent"] > 0 for a in attempts)
    assert [a["bytes_received"] > 0 for a in attempts] == [False, False, True]
    assert "server_time_ms" in attempts[-1] and "server_time_ms" not in attempts[0]
    links = [e["up"] for e in events if e["kind"] == "link"]
    assert links == [False, True]  # down once (not twice), up when the server answered
    # The status goes with the first report (built for the first try).
    assert kinds(client) == ["status", "link", "attempt", "attempt", "link", "attempt"]


def test_a_discard_and_a_resubmit_are_journaled_with_the_change(
    make_client: MakeClient, link: Link
) -> None:
    client = make_client([link("wifi")])
    with client.transaction():
        bad = client.record("customers", "c1", BAD)
    other = client.record("customers", "c2", BAD)
    client.sync_now()
    assert client.entry(bad).code == BAD_VERDICT[0]
    with pytest.raises(ValueError, match="plain text"):  # refused: nothing done or journaled
        client.discard(bad, "rep says\x00 wrong customer")
    assert client.entry(bad).state == State.PARKED
    client.discard(bad, "rep says: wrong customer")
    new = client.resubmit(other, {"name": "fixed"}, reason="name fixed")
    box = [e for e in client.journal_events() if e["kind"] == "databox"]
    assert [(e["action"], e["op_id"]) for e in box] == [("discard", bad), ("resubmit", other)]
    assert [e["reason"] for e in box] == ["rep says: wrong customer", "name fixed"]
    assert box[1]["new_op_id"] == new and "command_id" not in box[1]
    assert client.entry(other).state == State.RESUBMITTED


def test_the_storage_check_journals_each_refusal_even_inside_a_transaction(
    make_client: MakeClient,
) -> None:
    free = [5_000]  # above the floor, without the headroom that is trusted for a second
    client = make_client(
        [Offline()], config=OutboxConfig(min_free_bytes=1000), free_space=lambda _: free[0]
    )
    kept = client.record("customers", "c1", {"name": "A"})
    free[0] = 500
    with pytest.raises(StorageLow):
        client.record("customers", "c2", {"name": "B"})
    with pytest.raises(StorageLow), client.transaction():
        client.record("customers", "c3", {"name": "C"})
    refused = [(e["kind"], e["code"], e["free_bytes"]) for e in client.journal_events()]
    assert refused == [("refused", "storage_low", 500)] * 2  # the block's, after its rollback
    assert [e.op_id for e in client.entries()] == [kept]


def test_a_refused_record_is_journaled(make_client: MakeClient) -> None:
    client = make_client([Offline()])
    client.note_refused(12_345)
    (event,) = client.journal_events()
    assert (event["kind"], event["code"], event["free_bytes"]) == ("refused", "storage_low", 12_345)


def test_text_is_made_fit_for_the_wire_never_refused() -> None:
    assert name_text("wi\x00fi\ud800\x7f") == "wi\ufffdfi\ufffd\ufffd"
    assert name_text("x" * 100) == "x" * 64
    assert name_text("") == "-"
    assert message_text("a\nb\x00\udfff", 1000) == "a\nb\ufffd\ufffd"  # newlines stay
    assert message_text("é" * 2000, 1000) == "é" * 1000


def test_an_http_channel_counts_the_bytes_it_received(
    make_client: MakeClient, server: RealServer, device: Enrolled
) -> None:
    wifi = server.channel(device)
    client = make_client([wifi])
    client.record("customers", "c1", {"name": "A"})
    client.sync_now()
    (attempt,) = [e for e in client.journal_events() if e["kind"] == "attempt"]
    assert attempt["bytes_received"] == wifi.last_received > 0  # the answer's body, as sent

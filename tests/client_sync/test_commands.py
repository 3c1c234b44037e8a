"""Server commands on the device: carried out once per id, outcomes kept until reported,
a command that cannot be carried out fails cleanly."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from client_sync import State, SyncClient
from protocol.model import Command
from tests._doubles import BAD, RealServer
from tests.client_sync.conftest import Link

MakeClient = Callable[..., SyncClient]


def parked_pair(client: SyncClient) -> tuple[str, str]:
    """Two parked entries (the server refuses both)."""
    first = client.record("customers", "c1", BAD)
    second = client.record("customers", "c2", BAD)
    client.sync_now()
    assert client.entry(first).state == client.entry(second).state == State.PARKED
    return first, second


def test_a_command_delivered_twice_is_carried_out_once(make_client: MakeClient, link: Link) -> None:
    client = make_client([link("wifi")])
    first, second = parked_pair(client)
    orders = [
        Command("cmd-1", "resubmit", first, "rule fixed"),
        Command("cmd-2", "discard", second, "duplicate customer"),
    ]
    assert client._commands.carry_out(orders) == 2
    assert client._commands.carry_out(orders) == 0  # the same ack again
    box = [e for e in client.journal_events() if e["kind"] == "databox"]
    assert [(e["action"], e["op_id"], e["command_id"]) for e in box] == [
        ("resubmit", first, "cmd-1"),
        ("discard", second, "cmd-2"),
    ]
    log = {c["command_id"]: c for c in client.command_log()}
    new_op_id = client.entry(first).replaced_by
    assert log["cmd-1"]["status"] == "done" and log["cmd-1"]["new_op_id"] == new_op_id
    assert log["cmd-2"]["status"] == "done" and client.entry(second).state == State.DISCARDED
    resubmitted = client.entry(new_op_id)  # as it was: the same fields, a new entry
    assert resubmitted.fields == client.entry(first).fields and resubmitted.state == State.PENDING
    assert len(client.entries()) == 3


def test_a_command_that_cannot_be_carried_out_fails_cleanly_and_the_sync_goes_on(
    make_client: MakeClient, link: Link, server: RealServer
) -> None:
    client = make_client([link("wifi")])
    first, _ = parked_pair(client)
    fine = client.record("customers", "c3", {"name": "fine"})
    orders = [
        Command("cmd-a", "discard", "no-such-op", "gone"),
        Command("cmd-b", "resubmit", fine, "not parked"),
        Command("cmd-c", "discard", first, "   "),
        Command("cmd-d", "explode", first, "what"),
        Command("cmd-f", "resubmit", first, "bad\x00reason"),  # the app's own reason check
        Command("cmd-e", "resubmit", first, "fixed"),
    ]
    assert client._commands.carry_out(orders) == 6
    log = {c["command_id"]: (c["status"], c["code"]) for c in client.command_log()}
    assert log == {
        "cmd-a": ("failed", "unknown_entry"),
        "cmd-b": ("failed", "not_parked"),
        "cmd-c": ("failed", "invalid_command"),
        "cmd-d": ("failed", "invalid_command"),
        "cmd-f": ("failed", "invalid_command"),
        "cmd-e": ("done", None),
    }
    assert client.sync_now().remaining == 0  # the pending entry and the resubmit go
    assert client.entry(fine).state == State.ACKED


def test_outcomes_are_reported_until_acknowledged(make_client: MakeClient, link: Link) -> None:
    client = make_client([link("wifi")])
    first, _ = parked_pair(client)
    commands = client._commands
    commands.carry_out([Command("cmd-1", "discard", first, "wrong")])
    assert [o.command_id for o in commands.outcomes(100)] == ["cmd-1"]
    with client._outbox.store.write("test") as conn:
        commands.reported(["cmd-1"], conn)
    assert commands.outcomes(100) == []
    assert commands.carry_out([Command("cmd-1", "discard", first, "wrong")]) == 0


def test_a_command_and_its_outcome_commit_together(
    make_client: MakeClient, link: Link, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client([link("wifi")])
    first, _ = parked_pair(client)

    def broken(*args: object, **kwargs: object) -> str:
        raise RuntimeError("disk gone mid-transaction")

    monkeypatch.setattr(client._journal, "note_databox", broken)
    assert client._commands.carry_out([Command("cmd-1", "discard", first, "wrong")]) == 1
    # The discard rolled back with the journal write: still parked, the command failed.
    assert client.entry(first).state == State.PARKED
    (outcome,) = client.command_log()
    assert (outcome["status"], outcome["code"]) == ("failed", "error")
    assert "disk gone" in outcome["message"]

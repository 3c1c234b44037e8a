"""Reports through the real server: the first batch of a pass carries the journal, acked
only by its own ack; report-only batches; commands in acks carried out once."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from client_sync import OutboxConfig, OutgoingBatch, State, SyncClient
from client_sync._journal import name_text
from client_sync._reporting import with_report
from client_sync.errors import LinkFailure, ServerBusy
from protocol.codec import assemble_batch, decode_batch, encode_entry
from protocol.model import Ack, Command, Report
from tests._doubles import BAD, FakeClock, FakeTime, RealServer, ScriptedChannel, entries_of
from tests.client_sync.conftest import Link

MakeClient = Callable[..., SyncClient]


def report_of(batch: OutgoingBatch) -> Report | None:
    """The report a batch carried, decoded as the server decodes it."""
    return decode_batch(batch.body).report


def event_ids(report: Report | None) -> list[str]:
    assert report is not None
    return [e.id for e in report.journal]


def unacked(client: SyncClient) -> list[str]:
    return [e["id"] for e in client.journal_events() if e["acked_at"] is None]


def test_the_first_batch_of_a_pass_carries_the_report_the_rest_go_as_they_are(
    make_client: MakeClient, link: Link
) -> None:
    wifi = link("wifi")
    # report_every=0: every pass that sends nothing reports (an idle loop would, in 300 s)
    client = make_client([wifi], app_version="3.4.5", config=OutboxConfig(report_every=0))
    client.network_changed("wifi", True)
    before = unacked(client)
    for size in (300, 300):
        with client.transaction():
            for i in range(size):
                client.record("customers", f"c{size}-{i}", {"name": "A"})
    bad = client.record("customers", "bad", BAD)
    client.sync_now()
    assert [len(b) for b in wifi.batches] == [300, 301]
    first, second = (report_of(b) for b in wifi.batches)
    assert second is None  # the pass's later batches go as they are
    assert first is not None and event_ids(first)[: len(before)] == before
    status = [e for e in first.journal if e.kind == "status"]
    assert len(status) == 1 and status[0].app_version == "3.4.5"
    assert status[0].queue_depth == 601 and status[0].protocol_version == "2.1"
    counts = first.databox.counts  # the second batch may be taken ahead (in flight) already
    assert (counts.pending + counts.in_flight, counts.parked) == (601, 0)
    assert set(before) & set(unacked(client)) == set()  # acknowledged by its ack
    client.sync_now()  # nothing to send: the report-only batch tells the parked entry
    third = report_of(wifi.batches[-1])
    assert third is not None and len(wifi.batches[-1]) == 0
    assert [p.op_id for p in third.databox.parked] == [bad]
    assert third.databox.reasons and sum(third.databox.reasons.values()) == 1


def test_a_lost_ack_sends_the_same_event_ids_again(make_client: MakeClient, link: Link) -> None:
    wifi = link("wifi", script=["lost"])
    client = make_client([wifi])
    client.network_changed("wifi", True)
    client.record("customers", "c1", {"name": "A"})
    client.sync_now()
    lost, retried = (report_of(b) for b in wifi.batches)
    # The same events again, then what happened since (the lost attempt, the link down).
    assert event_ids(retried)[: len(event_ids(lost))] == event_ids(lost)
    assert set(event_ids(retried)) - set(event_ids(lost))
    assert not set(event_ids(retried)) & set(unacked(client))


def test_an_idle_device_reports_when_due_and_after_any_news(
    make_client: MakeClient, link: Link
) -> None:
    clock = FakeClock(step=0.0)
    wifi = link("wifi")
    client = make_client([wifi], clock=clock, config=OutboxConfig(report_every=300))
    client.sync_now()
    assert len(wifi.batches) == 1 and report_of(wifi.batches[0]) is not None  # first report
    client.sync_now()
    assert len(wifi.batches) == 2  # news: it found the link up
    client.sync_now()
    assert len(wifi.batches) == 2  # nothing new, not due: its own attempt calls for nothing
    clock.now += 299
    client.sync_now()
    assert len(wifi.batches) == 2
    clock.now += 2
    client.sync_now()
    assert len(wifi.batches) == 3  # due: picks up commands
    client.network_changed("wifi", False)
    client.sync_now()
    assert len(wifi.batches) == 4  # news: the link event goes at once
    assert any(e.kind == "link" for e in report_of(wifi.batches[3]).journal)  # type: ignore[union-attr]


def test_a_failed_report_only_batch_is_tried_once_and_never_waits(
    make_client: MakeClient, link: Link, sleeps: list[float]
) -> None:
    wifi = link("wifi", forever=LinkFailure("down"))
    client = make_client([wifi])
    report = client.sync_now()
    assert len(wifi.batches) == 1 and sleeps == [] and report.last_error is None
    events = client.journal_events()
    assert [e["kind"] for e in events][-2:] == ["link", "attempt"]
    assert events[-1]["outcome"] == "network_unreachable" and events[-1]["entries"] == 0


def test_a_spliced_report_is_the_batch_the_codec_assembles(
    make_client: MakeClient, link: Link
) -> None:
    wifi = link("wifi")
    client = make_client([wifi])
    client.record("customers", "c1", {"name": "A"})
    client.sync_now()
    batch = wifi.batches[0]
    decoded = decode_batch(batch.body)
    assert decoded.report is not None
    bodies = [encode_entry(e) for e in entries_of(batch)]
    assert batch.body == assemble_batch(
        batch.protocol_version, batch.batch_id, batch.device_id, bodies, decoded.report
    )
    bare = assemble_batch(batch.protocol_version, batch.batch_id, batch.device_id, bodies)
    plain = dataclasses.replace(batch, body=bare)
    assert with_report(plain, decoded.report).body == batch.body


def with_commands(channel: ScriptedChannel, commands: tuple[Command, ...], times: int) -> None:
    """The next ``times`` acks from the real server carry ``commands`` (as the server
    resends every command it has no outcome for)."""

    def answer(batch: OutgoingBatch) -> Ack:
        return dataclasses.replace(channel.inner.send(batch), commands=commands)

    channel.script.extend([answer] * times)


def test_commands_delivered_twice_are_carried_out_once_and_reported(
    make_client: MakeClient, link: Link, server: RealServer
) -> None:
    wifi = link("wifi")
    client = make_client([wifi])
    first = client.record("customers", "c1", BAD)
    second = client.record("customers", "c2", BAD)
    client.sync_now()
    commands = (
        Command("cmd-1", "resubmit", first, "rule fixed"),
        Command("cmd-2", "discard", second, "duplicate"),
        Command("cmd-3", "discard", "no-such-op", "gone"),
    )
    with_commands(wifi, commands, times=2)
    client.record("customers", "c3", {"name": "A"})
    client.sync_now()  # two acks carry the same commands: done once
    assert client.entry(first).state == State.RESUBMITTED
    assert client.entry(second).state == State.DISCARDED
    outcomes = {c["command_id"]: (c["status"], c["code"]) for c in client.command_log()}
    assert outcomes == {
        "cmd-1": ("done", None),
        "cmd-2": ("done", None),
        "cmd-3": ("failed", "unknown_entry"),
    }
    box = [e for e in client.journal_events() if e["kind"] == "databox"]
    assert sorted(e["command_id"] for e in box) == ["cmd-1", "cmd-2"]
    client.sync_now()  # the next report carries the outcomes
    reported = [o for b in wifi.batches if (r := report_of(b)) for o in r.outcomes]
    assert sorted(o.command_id for o in reported) == ["cmd-1", "cmd-2", "cmd-3"]
    assert all(c["reported_at"] is not None for c in client.command_log())


def test_hostile_text_is_journaled_fit_for_the_wire_and_the_server_takes_it(
    make_client: MakeClient, link: Link
) -> None:
    odd = link("wi\x00fi\u0085\ud800" + "x" * 100)  # a name no wire id may carry
    client = make_client([odd], app_version="3.\x00\udfff" + "9" * 100)
    bad = client.record("customers", "c1", BAD)
    client.sync_now()
    with pytest.raises(ValueError):  # the data box refuses a control character (_fixes.py)
        client.discard(bad, "\x01 why")
    client.discard(bad, "\x85 " + "why " * 100)  # allowed there; not fit for the wire
    client.network_changed(odd.name, False)
    before = [e["id"] for e in client.journal_events()]
    report = client.sync_now()
    assert report.last_error is None  # the server took every report: nothing refused
    assert not set(before) & set(unacked(client))
    box = [e for e in client.journal_events() if e["kind"] == "databox"]
    assert len(box[0]["reason"]) == 64 and "\x85" not in box[0]["reason"]
    assert client.receipt(bad).channel == name_text(odd.name)  # stored as the journal has it


def test_a_long_offline_journal_goes_up_500_events_a_batch(
    make_client: MakeClient, link: Link
) -> None:
    wifi = link("wifi")
    client = make_client([wifi])
    for i in range(1_100):
        client.network_changed("wifi", i % 2 == 1)
    for _ in range(3):
        client.sync_now()
    sizes = [len(r.journal) for b in wifi.batches if (r := report_of(b)) is not None]
    assert sizes[:2] == [500, 500] and sizes[2] > 100  # oldest first, then the rest
    assert [e["acked_at"] is None for e in client.journal_events()].count(True) <= 2


def test_a_report_only_batch_told_to_wait_holds_the_next_sync_back(
    make_client: MakeClient, link: Link
) -> None:
    busy = ServerBusy("busy", status=429, retry_after=120.0, channel="wifi")
    wifi = link("wifi", script=[busy])
    fake = FakeTime()
    client = make_client([wifi], sleep=fake.sleep, monotonic=fake)
    client.sync_now()  # nothing to send: a report-only batch, answered 429 Retry-After 120
    assert len(wifi.batches) == 1 and fake.sleeps == []
    client.record("customers", "c1", {"name": "A"})
    assert client.sync_now().timed_out  # 60 s of bound: not begun, the wait is longer
    assert client.sync_now(timeout=None).applied == 1
    assert fake.sleeps == [120.0]  # the entry waited out the server's Retry-After first

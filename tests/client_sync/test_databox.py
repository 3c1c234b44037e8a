"""The data box API and delivery receipts, against the real server (tests/_doubles.py).

Each test drives a real SyncClient on a real SQLCipher file; verdicts come from the
real ``create_app()``; link failures are scripted in front of it; clocks are fake.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from client_sync import RetryPolicy, State, SyncClient
from client_sync._messages import message
from client_sync.errors import AuthRejected, LinkFailure, ServerBusy, UnknownEntry
from protocol.errors import EntryInvalid
from protocol.reasons import Reason
from tests._doubles import BAD, BAD_VERDICT, SIBLING_CODE, Enrolled, FakeClock, RealServer
from tests.client_sync.conftest import Link

MakeClient = Callable[..., SyncClient]


def _dns_failure(name: str) -> LinkFailure:
    """A LinkFailure as HttpChannel raises it over a failed name lookup (cause chained)."""
    try:
        try:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        except socket.gaierror as exc:
            raise LinkFailure(f"{name}: ConnectError: no such host", channel=name) from exc
    except LinkFailure as failure:
        return failure


def test_every_waiting_entry_shows_its_state_reason_channel_and_next_retry(
    make_client: MakeClient, link: Link, sleeps: list[float]
) -> None:
    clock = FakeClock()
    wifi = link("wifi", script=[_dns_failure("wifi")])
    with make_client([wifi], clock=clock) as client:
        client.record("customers", "ok", {"name": "Fine"})
        with client.transaction():
            bad = client.record("customers", "bad", BAD)
            sibling = client.record("customers", "sib", {"name": "Sibling"})
        client.sync_now()  # one DNS failure (waits 3 s, recorded), then the real server
        later = client.record("customers", "later", {"name": "Later"})
        box = {e.op_id: e for e in client.databox(locale="en")}
        counts = client.databox_counts()

    assert sleeps == [3.0]
    assert set(box) == {bad, sibling, later}  # the applied entry is not in the data box
    parked = box[bad]
    assert (parked.state, parked.code, parked.server_code, parked.field) == (
        State.PARKED,
        Reason.FIELD_TOO_LONG,
        BAD_VERDICT[0],
        BAD_VERDICT[1],
    )
    assert parked.message == message(Reason.FIELD_TOO_LONG, "en", field="notes")
    assert "notes" in parked.message and parked.detail  # the server's own words kept too
    assert (parked.attempts, parked.channel) == (2, "wifi")
    assert parked.sent_at is not None and parked.next_retry_at is None
    assert box[sibling].code == Reason.INVALID_VALUE
    assert box[sibling].server_code == SIBLING_CODE
    assert box[sibling].message == message(Reason.INVALID_VALUE, "en", server_code=SIBLING_CODE)
    assert "another entry" in (box[sibling].message or "")
    assert (box[later].state, box[later].code, box[later].attempts) == (State.PENDING, None, 0)
    assert counts.states == {"pending": 1, "in_flight": 0, "parked": 2}
    assert counts.reasons == {"field_too_long": 1, "invalid_value": 1}
    assert counts.total == 3


def test_a_pending_entry_shows_the_last_attempt_failure_and_when_it_is_tried_again(
    make_client: MakeClient, link: Link, sleeps: list[float]
) -> None:
    clock = FakeClock()
    busy = ServerBusy("wifi: HTTP 429 rate_limited", status=429, code="rate_limited")
    wifi = link("wifi", forever=busy)
    with make_client([wifi], clock=clock, retry=RetryPolicy(max_attempts=1)) as client:
        op_id = client.record("customers", "c1", {"name": "Wang"})
        client.sync_now()
        before = clock()
        [entry] = client.databox(locale="zh_Hans")
        counts = client.databox_counts()
    assert (entry.op_id, entry.state, entry.code) == (op_id, State.PENDING, "rate_limited")
    assert entry.message == message(Reason.RATE_LIMITED, "zh_Hans")
    assert entry.message != message(Reason.RATE_LIMITED, "en")
    assert entry.detail is not None and "429" in entry.detail
    assert entry.channel == "wifi" and entry.attempts == 1
    assert entry.next_retry_at is not None
    assert before + 2.0 <= entry.next_retry_at <= clock() + 3.0  # 3 s after the failure
    assert counts.failing == {"rate_limited": 1} and counts.reasons == {}


def test_locale_of_the_client_and_of_one_call(make_client: MakeClient, link: Link) -> None:
    with make_client([link("wifi")], locale="zh-Hans-CN") as client:
        client.record("customers", "bad", BAD)
        client.sync_now()
        [zh] = client.databox()
        [en] = client.databox(locale="en")
    assert zh.message == message(Reason.FIELD_TOO_LONG, "zh_Hans", field="notes")
    assert "“notes”" in zh.message and "过长" in zh.message
    assert en.message == message(Reason.FIELD_TOO_LONG, "en", field="notes")


def test_receipts_follow_queued_sent_applied_and_survive_a_restart(
    make_client: MakeClient, link: Link, db_path: Path, server: RealServer, device: Enrolled
) -> None:
    wifi = link("wifi", script=[LinkFailure("wifi: down", channel="wifi")])
    with make_client([wifi]) as client:
        op_id = client.record("customers", "c1", {"name": "Li"})
        queued = client.receipt(op_id)
        assert (queued.stage, queued.sent_at, queued.channel) == ("queued", None, None)
        client.sync_now(timeout=1.0)  # the failure's 3 s wait would end past the bound
        sent = client.receipt(op_id)
        assert (sent.stage, sent.channel, sent.attempts, sent.state) == (
            "sent",
            "wifi",
            1,
            State.PENDING,
        )
    with make_client([link("cellular", metered=True)]) as client:
        client.sync_now()
    with make_client([link("wifi")]) as client:  # a restart: read back from the file
        done = client.receipt(op_id)
        assert client.unsynced("customers", "c1") == 0
        assert client.unsynced_count() == 0
    assert (done.stage, done.channel, done.attempts, done.state) == (
        "applied",
        "cellular",
        2,
        State.ACKED,
    )
    assert done.result is not None and done.result.status == "applied"
    assert done.acked_at is not None and done.sent_at is not None
    assert done.queued_at <= done.sent_at <= done.acked_at
    assert server.verdicts(device)[op_id] == "applied"


def test_a_duplicate_receipt_carries_the_original_result(
    make_client: MakeClient, link: Link
) -> None:
    wifi = link("wifi", script=["lost"])  # delivered, but the answer was lost
    with make_client([wifi]) as client:
        op_id = client.record("customers", "c1", {"name": "Li"})
        client.sync_now()
        receipt = client.receipt(op_id)
    assert receipt.stage == "duplicate"
    assert receipt.result is not None and receipt.result.original is not None
    assert receipt.result.original.status == "applied"


def test_a_rejected_receipt_holds_the_servers_verdict(make_client: MakeClient, link: Link) -> None:
    with make_client([link("wifi")]) as client:
        op_id = client.record("customers", "bad", BAD)
        client.sync_now()
        receipt = client.receipt(op_id)
    assert receipt.stage == "rejected" and receipt.state is State.PARKED
    assert receipt.result is not None
    assert (receipt.result.code, receipt.result.field) == BAD_VERDICT


def test_pruning_an_entry_keeps_its_receipt(make_client: MakeClient, link: Link) -> None:
    with make_client([link("wifi")]) as client:
        first = client.record("customers", "c1", {"name": "Li"})
        client.record("customers", "c2", {"name": "Zhao"})
        client.sync_now()
        store = client._outbox.store
        from client_sync._recording import write_floor

        recorder = client._outbox.recorder
        with store.write("prune like h9-journal will") as conn:
            write_floor(conn, recorder.next_seq, recorder.last_hlc)
            conn.exec_driver_sql("DELETE FROM entries WHERE op_id = ?", (first,))
        receipt = client.receipt(first)
        with pytest.raises(UnknownEntry):
            client.entry(first)
    assert (receipt.stage, receipt.state, receipt.record_id) == ("applied", None, "c1")


def test_unknown_receipt_raises(make_client: MakeClient, link: Link) -> None:
    with make_client([link("wifi")]) as client, pytest.raises(UnknownEntry):
        client.receipt("0190d7f3-0000-7000-8000-000000000000")


def test_unsynced_ticks_per_record_and_the_badge(make_client: MakeClient, link: Link) -> None:
    wifi = link("wifi")
    with make_client([wifi]) as client:
        client.record("customers", "c1", {"name": "One"})
        client.record("customers", "c1", {"name": "One again"})
        client.record("leads", "c1", {"name": "A lead, same id"})
        assert client.unsynced("customers", "c1") == 2
        assert client.unsynced("leads", "c1") == 1
        assert client.unsynced("customers", "nope") == 0
        assert client.unsynced_records("customers") == {"c1": 2}
        assert client.unsynced_count() == 3
        client.sync_now()
        assert client.unsynced("customers", "c1") == 0
        assert client.unsynced_count() == 0
        client.record("customers", "bad", BAD)
        client.sync_now()
        assert client.unsynced("customers", "bad") == 1  # parked: still not on the server
        assert client.unsynced_count() == 1


def test_unsynced_reads_the_state_index_not_every_row(make_client: MakeClient, link: Link) -> None:
    with make_client([link("wifi")]) as client, client._outbox.store.read("plan") as conn:
        plan = " ".join(
            str(row[-1])
            for row in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT record_id, count(*) FROM entries"
                " WHERE state = 'pending' AND collection = 'customers' GROUP BY record_id"
            )
        )
    assert "entries_state_seq" in plan and "SCAN entries" not in plan.replace("USING", "")


def test_resubmit_links_the_new_entry_to_the_original(make_client: MakeClient, link: Link) -> None:
    with make_client([link("wifi")]) as client:
        bad = client.record("customers", "bad", BAD)
        client.sync_now()
        new = client.resubmit(bad, {"name": "Fixed", "notes": "short"}, reason="notes cut")
        [waiting] = client.databox()
        assert (waiting.op_id, waiting.resubmit_of, waiting.state) == (new, bad, State.PENDING)
        assert client.entry(bad).replaced_by == new
        client.sync_now()
        assert client.receipt(new).stage == "applied"
        assert client.databox() == []
        assert [a["action"] for a in client.audit_log()] == ["resubmit"]
        assert client.audit_log()[0]["reason"] == "notes cut"


@pytest.mark.parametrize("reason", ["", "   ", "a\x00b", "bad\udcff", "x" * 501, 7])
def test_resubmit_and_discard_refuse_a_bad_reason_and_change_nothing(
    make_client: MakeClient, link: Link, reason: object
) -> None:
    with make_client([link("wifi")]) as client:
        bad = client.record("customers", "bad", BAD)
        client.sync_now()
        with pytest.raises(ValueError):
            client.discard(bad, reason)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            client.resubmit(bad, {"name": "x"}, reason=reason)  # type: ignore[arg-type]
        assert client.entry(bad).state is State.PARKED
        assert client.audit_log() == []


def test_resubmit_with_invalid_fields_writes_nothing(make_client: MakeClient, link: Link) -> None:
    with make_client([link("wifi")]) as client:
        bad = client.record("customers", "bad", BAD)
        client.sync_now()
        before = client.stats()
        with pytest.raises(EntryInvalid):
            client.resubmit(bad, {"name": 5}, reason="typed wrong")
        assert client.stats() == before


def test_databox_state_filter_refuses_final_states(make_client: MakeClient, link: Link) -> None:
    with make_client([link("wifi")]) as client:
        with pytest.raises(ValueError):
            client.databox(state="acked")
        assert client.databox(state="parked") == []


def test_a_revoked_device_shows_device_revoked(
    make_client: MakeClient, link: Link, server: RealServer, device: Enrolled
) -> None:
    from server_sync import revoke_device

    with make_client([link("wifi")]) as client:
        op_id = client.record("customers", "c1", {"name": "Li"})
        with server.engine.begin() as conn:
            revoke_device(conn, device.device_id)
        report = client.sync_now()
        [entry] = client.databox()
    assert isinstance(report.last_error, AuthRejected)
    assert (entry.op_id, entry.state, entry.code) == (op_id, State.PENDING, Reason.DEVICE_REVOKED)
    assert entry.message == message(Reason.DEVICE_REVOKED, None)


def test_prune_receipts_keeps_the_retention(make_client: MakeClient, link: Link) -> None:
    from client_sync._boxview import RECEIPT_RETENTION, prune_receipts

    clock = FakeClock()
    with make_client([link("wifi")], clock=clock) as client:
        op_id = client.record("customers", "c1", {"name": "Li"})
        client.sync_now()
        acked_at = client.receipt(op_id).acked_at
        assert acked_at is not None
        store = client._outbox.store
        with store.write("prune") as conn:
            assert prune_receipts(conn, acked_at + RECEIPT_RETENTION - 1) == 0
        assert client.receipt(op_id).stage == "applied"
        with store.write("prune") as conn:
            assert prune_receipts(conn, acked_at + RECEIPT_RETENTION + 1) == 1
        from_row = client.receipt(op_id)  # the entry's row still says the answer
        assert (from_row.stage, from_row.channel, from_row.state) == (
            "applied",
            "wifi",
            State.ACKED,
        )

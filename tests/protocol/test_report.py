"""Protocol 2.1: the batch's report and the ack's commands, on the wire and back."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import ProtocolError, decode_ack, decode_batch
from protocol.codec import (
    assemble_batch,
    batch_overhead,
    batch_size,
    canonical_json,
    decode_command,
    encode_ack,
    encode_batch,
    encode_command,
    encode_entry,
    encode_report,
)
from protocol.constants import (
    MAX_JOURNAL_EVENTS_PER_BATCH,
    MAX_OUTCOMES_PER_REPORT,
    MAX_PARKED_PER_REPORT,
)
from protocol.model import (
    Ack,
    AttemptEvent,
    Batch,
    Command,
    Databox,
    DataboxCounts,
    DataboxEvent,
    Entry,
    LinkEvent,
    Outcome,
    ParkedEntry,
    RefusedEvent,
    Report,
    StatusEvent,
)

ENTRY = Entry(
    "op-1",
    "dev-1",
    1,
    "tx-1",
    1,
    "1767225600000-00000-dev-1",
    "customers",
    "c-1",
    "upsert",
    {"name": "王芳"},
    1,
)

REPORT = Report(
    sent_ms=1767225600500,
    journal=(
        LinkEvent("ev-1", 1767225600000, "wifi", False, "os"),
        AttemptEvent(
            "ev-2",
            1767225600100,
            "cellular",
            1767225600000,
            1767225600100,
            1,
            300,
            40,
            "ok",
            server_time_ms=1767225600090,
        ),
        StatusEvent("ev-3", 1767225600200, 4, 10**9, "3.2.0", "2.1"),
        RefusedEvent("ev-4", 1767225600300, "storage_low", 1024),
        DataboxEvent("ev-5", 1767225600400, "discard", "op-0", "duplicate customer"),
    ),
    databox=Databox(
        DataboxCounts(pending=3, in_flight=1, parked=1),
        {"field_too_long": 1},
        (ParkedEntry("op-0", "customers", "c-0", "too_long", "notes: 2001 > 2000", 3600),),
    ),
    outcomes=(Outcome("cmd-1", "done", new_op_id="op-9"), Outcome("cmd-2", "failed", "gone")),
)

#: Written by hand from docs/protocol.md's rules (sorted keys, None members left out).
PINNED_REPORT = (
    b'{"databox":{"counts":{"in_flight":1,"parked":1,"pending":3},"parked":[{"age_s":3600,'
    b'"code":"too_long","collection":"customers","message":"notes: 2001 > 2000",'
    b'"op_id":"op-0","record_id":"c-0"}],"reasons":{"field_too_long":1}},"journal":['
    b'{"at_ms":1767225600000,"channel":"wifi","id":"ev-1","kind":"link","source":"os",'
    b'"up":false},{"at_ms":1767225600100,"bytes_received":40,"bytes_sent":300,'
    b'"channel":"cellular","ended_ms":1767225600100,"entries":1,"id":"ev-2",'
    b'"kind":"attempt","outcome":"ok","server_time_ms":1767225600090,'
    b'"started_ms":1767225600000},{"app_version":"3.2.0","at_ms":1767225600200,'
    b'"free_bytes":1000000000,"id":"ev-3","kind":"status","protocol_version":"2.1",'
    b'"queue_depth":4},{"at_ms":1767225600300,"code":"storage_low","free_bytes":1024,'
    b'"id":"ev-4","kind":"refused"},{"action":"discard","at_ms":1767225600400,"id":"ev-5",'
    b'"kind":"databox","op_id":"op-0","reason":"duplicate customer"}],"outcomes":['
    b'{"command_id":"cmd-1","new_op_id":"op-9","status":"done"},{"code":"gone",'
    b'"command_id":"cmd-2","status":"failed"}],"sent_ms":1767225600500}'
)


def test_a_report_encodes_to_its_pinned_bytes() -> None:
    assert encode_report(REPORT) == PINNED_REPORT


def test_a_batch_without_a_report_is_byte_for_byte_a_2_0_batch() -> None:
    data = encode_batch(Batch("2.0", "b-1", "dev-1", (ENTRY,)))
    assert (
        data
        == b'{"batch_id":"b-1","device_id":"dev-1","entries":['
        + encode_entry(ENTRY)
        + b'],"protocol_version":"2.0"}'
    )
    assert decode_batch(data).report is None


def test_a_batch_with_a_report_round_trips_and_assembles_to_the_same_bytes() -> None:
    batch = Batch("2.1", "b-1", "dev-1", (ENTRY,), REPORT)
    data = encode_batch(batch)
    assert data.endswith(b',"protocol_version":"2.1","report":' + PINNED_REPORT + b"}")
    assert assemble_batch("2.1", "b-1", "dev-1", [encode_entry(ENTRY)], REPORT) == data
    overhead = batch_overhead("2.1", "b-1", "dev-1", REPORT)
    assert batch_size(overhead, [len(encode_entry(ENTRY))]) == len(data)
    assert decode_batch(data) == batch


def test_a_report_only_batch_is_accepted_and_an_empty_batch_without_one_is_not() -> None:
    batch = Batch("2.1", "b-1", "dev-1", (), REPORT)
    assert decode_batch(encode_batch(batch)) == batch
    with pytest.raises(ProtocolError) as caught:
        decode_batch(encode_batch(Batch("2.1", "b-1", "dev-1", ())))
    assert caught.value.errors == {
        "entries": ["a batch without a report carries at least one entry"]
    }


def test_a_report_under_protocol_2_0_is_refused() -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_batch(encode_batch(Batch("2.0", "b-1", "dev-1", (ENTRY,), REPORT)))
    assert caught.value.errors == {"report": ["a report needs protocol version 2.1 or later"]}
    later = Batch("2.7", "b-1", "dev-1", (ENTRY,), REPORT)  # a later minor still reads
    assert decode_batch(encode_batch(later)) == later


def test_an_ack_with_commands_round_trips_and_one_without_is_a_2_0_ack() -> None:
    command = Command("cmd-1", "resubmit", "op-0", "rule fixed on the server")
    ack = Ack("b-1", (), 1767225600000, (command,))
    data = encode_ack(ack)
    assert b'"commands":[{"command_id":"cmd-1","kind":"resubmit"' in data
    assert decode_ack(data) == ack
    assert encode_ack(Ack("b-1", (), 5)) == b'{"batch_id":"b-1","results":[],"server_time_ms":5}'
    assert decode_command(encode_command(command)) == command


def _wire_batch(report: Any) -> bytes:
    raw = {"protocol_version": "2.1", "batch_id": "b", "device_id": "dev-1", "entries": []}
    raw["report"] = report
    return canonical_json(raw)


def _report() -> dict[str, Any]:
    return json.loads(PINNED_REPORT)


def _refused(data: bytes) -> dict[str, Any]:
    with pytest.raises(ProtocolError) as caught:
        decode_batch(data)
    return dict(caught.value.errors)


def test_a_duplicate_key_inside_a_report_refuses_the_batch() -> None:
    data = _wire_batch(_report()).replace(b'"sent_ms":', b'"sent_ms":1,"sent_ms":', 1)
    assert _refused(data) == {"_schema": ["duplicate JSON key"]}
    data = _wire_batch(_report()).replace(b'"up":false', b'"up":false,"up":true', 1)
    assert _refused(data) == {"_schema": ["duplicate JSON key"]}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("journal", 0, "channel"), "\ud800"),
        (("journal", 0, "id"), "e\x00"),
        (("databox", "parked", 0, "message"), "bad \udfff text"),
        (("outcomes", 0, "message"), "\x00"),
    ],
)
def test_lone_surrogates_and_nul_are_refused_anywhere_in_a_report(
    path: tuple[Any, ...], value: str
) -> None:
    report = _report()
    target: Any = report
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    data = json.dumps(_wire_raw(report)).encode()  # ensure_ascii: arrives as \u escapes
    assert "lone surrogate or NUL" in str(_refused(data))


def _wire_raw(report: Any) -> dict[str, Any]:
    return {
        "protocol_version": "2.1",
        "batch_id": "b",
        "device_id": "dev-1",
        "entries": [],
        "report": report,
    }


@pytest.mark.parametrize("digits", ["١٢٣", "１２３", "²", "1_000"])
def test_non_ascii_digits_are_not_numbers(digits: str) -> None:
    report = _report()
    report["sent_ms"] = digits
    assert _refused(_wire_batch(report)) == {"report": {"sent_ms": ["Not a valid integer."]}}
    report = _report()
    raw = _wire_raw(report)
    raw["protocol_version"] = f"2.{digits}"
    assert "protocol_version" in _refused(json.dumps(raw).encode())


def test_huge_and_exotic_numbers_are_refused() -> None:
    literal = _wire_batch(_report()).replace(b'"sent_ms":1767225600500', b'"sent_ms":' + b"9" * 30)
    assert _refused(literal) == {"_schema": ["integer out of range"]}
    for value, where in (
        (2**63, ("databox", "counts", "pending")),
        (-1, ("journal", 3, "free_bytes")),
        (253_402_300_800_000, ("journal", 0, "at_ms")),
        (1.5, ("sent_ms",)),
        (True, ("journal", 1, "entries")),
    ):
        report = _report()
        target = report
        for step in where[:-1]:
            target = target[step]
        target[where[-1]] = value
        errors = _refused(_wire_batch(report))
        assert str(where[-1]) in json.dumps(errors, default=str)
    for constant in (b"NaN", b"Infinity", b"1e999"):
        data = _wire_batch(_report()).replace(b"1767225600500", constant, 1)
        _refused(data)


def test_too_many_events_parked_entries_or_outcomes_are_refused() -> None:
    event = {"id": "e", "at_ms": 1, "kind": "link", "channel": "w", "up": True, "source": "os"}
    report = _report()
    report["journal"] = [{**event, "id": f"e{i}"} for i in range(MAX_JOURNAL_EVENTS_PER_BATCH)]
    assert decode_batch(_wire_batch(report)).report is not None
    report["journal"].append({**event, "id": "one-more"})
    assert _refused(_wire_batch(report)) == {
        "report": {"journal": ["Longer than maximum length 500."]}
    }
    report = _report()
    report["databox"]["parked"] *= MAX_PARKED_PER_REPORT + 1
    assert _refused(_wire_batch(report)) == {
        "report": {"databox": {"parked": ["Longer than maximum length 100."]}}
    }
    report = _report()
    report["outcomes"] = [{"command_id": f"c{i}", "status": "done"} for i in range(101)]
    assert MAX_OUTCOMES_PER_REPORT == 100
    assert _refused(_wire_batch(report)) == {
        "report": {"outcomes": ["Longer than maximum length 100."]}
    }


def test_over_long_ids_and_repeated_event_ids_are_refused() -> None:
    report = _report()
    report["journal"][0]["id"] = "x" * 65
    assert _refused(_wire_batch(report)) == {
        "report": {"journal": {0: {"id": ["1-64 characters, no control characters"]}}}
    }
    report = _report()
    report["databox"]["reasons"] = {"r" * 65: 1, "ok": -1}
    assert _refused(_wire_batch(report)) == {
        "report": {
            "databox": {
                "reasons": {
                    "r" * 65: {"key": ["1-64 characters, no control characters"]},
                    "ok": {
                        "value": [
                            "Must be greater than or equal to 0 and less than or "
                            "equal to 9223372036854775807."
                        ]
                    },
                }
            }
        }
    }
    report = _report()
    report["journal"][1]["id"] = report["journal"][0]["id"]
    assert _refused(_wire_batch(report)) == {
        "report": {"journal": ["event id repeated within the report"]}
    }


def test_an_event_of_an_unknown_kind_or_with_another_kinds_member_is_refused() -> None:
    report = _report()
    report["journal"][0]["kind"] = "wipe"
    assert _refused(_wire_batch(report)) == {
        "report": {
            "journal": {0: {"kind": ["Must be one of: link, attempt, status, refused, databox."]}}
        }
    }
    report = _report()
    report["journal"][0]["outcome"] = "ok"  # an attempt's member on a link event
    assert _refused(_wire_batch(report)) == {
        "report": {"journal": {0: {"outcome": ["Unknown field."]}}}
    }
    report = _report()
    report["journal"][0]["up"] = 1  # JSON's true only, not a truthy number
    assert _refused(_wire_batch(report)) == {
        "report": {"journal": {0: {"up": ["Not a valid boolean."]}}}
    }


_ids = st.text(st.characters(codec="ascii", categories=("L", "N")), min_size=1, max_size=8)
_times = st.integers(0, 253_402_300_799_999)
_counts = st.integers(0, 2**63 - 1)
_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)
_events = st.one_of(
    st.builds(LinkEvent, _ids, _times, _ids, st.booleans(), st.sampled_from(["sync", "os"])),
    st.builds(
        AttemptEvent,
        _ids,
        _times,
        _ids,
        _times,
        _times,
        _counts,
        _counts,
        _counts,
        _ids,
        st.none() | _times,
    ),
    st.builds(StatusEvent, _ids, _times, _counts, _counts, _ids, st.just("2.1")),
    st.builds(RefusedEvent, _ids, _times, st.just("storage_low"), _counts),
    st.builds(
        DataboxEvent,
        _ids,
        _times,
        st.sampled_from(["discard", "resubmit"]),
        _ids,
        _ids,
        st.none() | _ids,
        st.none() | _ids,
    ),
)
_reports = st.builds(
    Report,
    _times,
    st.lists(_events, max_size=6, unique_by=lambda e: e.id).map(tuple),
    st.builds(
        Databox,
        st.builds(DataboxCounts, _counts, _counts, _counts),
        st.dictionaries(_ids, _counts, max_size=3),
        st.lists(
            st.builds(ParkedEntry, _ids, _ids, _ids, _ids, _text, _counts),
            max_size=3,
        ).map(tuple),
    ),
    st.lists(
        st.builds(
            Outcome,
            _ids,
            st.sampled_from(["done", "failed"]),
            st.none() | _ids,
            st.none() | _text,
            st.none() | _ids,
        ),
        max_size=3,
    ).map(tuple),
)


@settings(max_examples=300, derandomize=True)
@given(_reports, st.booleans())
def test_any_report_round_trips_and_assembles_to_its_encoding(
    report: Report, with_entry: bool
) -> None:
    entries = (ENTRY,) if with_entry else ()
    batch = Batch("2.1", "b-1", "dev-1", entries, report)
    data = encode_batch(batch)
    assert assemble_batch("2.1", "b-1", "dev-1", [encode_entry(e) for e in entries], report) == data
    assert decode_batch(data) == batch

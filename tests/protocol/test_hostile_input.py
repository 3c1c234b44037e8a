"""The protocol's own rules for hostile input, unit by unit (device and server share them)."""

from __future__ import annotations

import decimal
import gzip
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from protocol import EntryInvalid, ProtocolError, UnsupportedVersion, decode_ack, decode_batch
from protocol.codec import check_protocol_version, decompress
from protocol.constants import PROTOCOL_MAJOR, PROTOCOL_VERSION
from protocol.fieldtypes import Decimal, Email, Enum, Int, Reference, String, Timestamp
from protocol.registry import check_record_id


def _batch(**entry: Any) -> dict[str, Any]:
    base = {
        "op_id": "o1", "device_id": "d1", "seq": 1, "tx_id": "t1", "tx_count": 1,
        "hlc": "1700000000000-00000-d1", "collection": "customers", "record_id": "c1",
        "kind": "upsert", "fields": {"name": "x"}, "schema_version": 1,
    }  # fmt: skip
    base.update(entry)
    return {
        "protocol_version": PROTOCOL_VERSION,
        "batch_id": "b1",
        "device_id": "d1",
        "entries": [base],
    }


def _refused(text: str) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        decode_batch(text.encode("utf-8", "surrogatepass"))
    return caught.value


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(_batch(record_id="\ud800")),
        json.dumps(_batch(fields={"name": "\udc00x"})),
        json.dumps(_batch(fields={"\ud83d": 1})),
        json.dumps(_batch(fields={"name": "a\u0000b"})),
        json.dumps(_batch(seq=2**63)),
        json.dumps(_batch(schema_version=2**31)),
        json.dumps(_batch(record_id="c\x00")),
        json.dumps(_batch(op_id="o\x1f")),
        json.dumps(_batch(fields={"name": "x", "n": 1})).replace('"n": 1', '"n": ' + "9" * 4301),
        json.dumps(_batch(fields={"n": 1})).replace('"n": 1', '"n": 1e400'),
        json.dumps(_batch(fields={"n": 1})).replace('"n": 1', '"n": -1e400'),
        json.dumps(_batch(fields={"n": 1})).replace('"n": 1', '"n": ' + "1" * 40 + ".0"),
        json.dumps(_batch()).replace('"seq": 1', '"seq": 1, "seq": 2'),
        json.dumps(_batch()).replace('"fields": {"name": "x"}', '"fields": {"a": 1, "a": 1}'),
    ],
)
def test_malformed_wire_data_is_a_protocol_error(text: str) -> None:
    _refused(text)


def test_a_valid_surrogate_pair_is_fine() -> None:
    batch = decode_batch(json.dumps(_batch(fields={"name": "\U0001f600"})).encode())
    assert batch.entries[0].fields["name"] == "\U0001f600"


def test_input_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(ProtocolError):
        decode_batch(json.dumps(_batch()).encode("utf-16"))


@pytest.mark.parametrize("version", ["².0", "١.0", "1.０", "1.0 ", "1", "1.", ".1", "11111.0", 1])
def test_versions_are_ascii_major_minor(version: object) -> None:
    with pytest.raises(ProtocolError) as caught:
        check_protocol_version(version)
    assert not isinstance(caught.value, UnsupportedVersion)


def test_another_major_is_upgrade_required() -> None:
    with pytest.raises(UnsupportedVersion):
        check_protocol_version(f"{PROTOCOL_MAJOR + 1}.0")
    with pytest.raises(UnsupportedVersion):
        check_protocol_version(f"{PROTOCOL_MAJOR - 1}.0")
    check_protocol_version(f"{PROTOCOL_MAJOR}.9999")


def test_trailing_bytes_after_gzip_are_refused() -> None:
    body = gzip.compress(b"{}")
    assert decompress(body, "gzip") == b"{}"
    for extra in (b"\x00", b"junk", gzip.compress(b"{}")):
        with pytest.raises(ProtocolError, match="after the end"):
            decompress(body + extra, "gzip")


def test_acks_carry_a_bounded_server_time() -> None:
    assert decode_ack(b'{"batch_id":"b","results":[],"server_time_ms":5}').server_time_ms == 5
    assert decode_ack(b'{"batch_id":"b","results":[]}').server_time_ms is None
    for bad in (b"-1", b"true", b'"5"', b"99999999999999999"):
        with pytest.raises(ProtocolError):
            decode_ack(b'{"batch_id":"b","results":[],"server_time_ms":' + bad + b"}")


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("1e999999", "invalid_decimal"),
        ("1E+2", "invalid_decimal"),
        (str(10**300), "invalid_decimal"),
        (10**300, "invalid_decimal"),
        (decimal.Decimal("1e999999"), "invalid_decimal"),
        (decimal.Decimal("1e-999999"), "invalid_decimal"),
        (decimal.Decimal("NaN"), "invalid_decimal"),
        ("１２.５０", "invalid_decimal"),
        ("Infinity", "invalid_decimal"),
        ("1" * 100_000, "invalid_decimal"),
    ],
)
def test_decimals_are_bounded_before_conversion(value: object, code: str) -> None:
    with pytest.raises(EntryInvalid) as caught:
        Decimal(places=2).normalize(value, "amount")
    assert caught.value.code == code


def test_decimals_in_range_still_normalise() -> None:
    d = Decimal(places=2, max_digits=18)
    assert d.normalize(" 12.5 ", "a") == "12.50"
    assert d.normalize(-3, "a") == "-3.00"
    assert d.normalize("9999999999999999.99", "a") == "9999999999999999.99"
    assert d.normalize(decimal.Decimal("0.10"), "a") == "0.10"
    with pytest.raises(EntryInvalid):
        d.normalize("99999999999999999.00", "a")
    with pytest.raises(ValueError):
        Decimal(places=2, max_digits=39)


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("9999-12-31T23:59:59-14:00", "out_of_range"),
        ("0001-01-01T00:00:00+14:00", "out_of_range"),
        ("1899-12-31T23:59:59Z", "out_of_range"),
        (datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-14))), "out_of_range"),
        ("２０２６-01-01T00:00:00Z", "invalid_timestamp"),
        ("2026-01-01T00:00:00Z" + " " * 100, "invalid_timestamp"),
        ("2026-01-01T00:00:00", "invalid_timestamp"),
    ],
)
def test_timestamps_are_ascii_and_within_their_years(value: object, code: str) -> None:
    with pytest.raises(EntryInvalid) as caught:
        Timestamp().normalize(value, "due_at")
    assert caught.value.code == code


def test_timestamps_in_range_still_normalise() -> None:
    t = Timestamp()
    assert t.normalize("2026-03-01T08:00:00+08:00", "t") == "2026-03-01T00:00:00.000Z"
    assert t.normalize(datetime(2026, 1, 1, tzinfo=UTC), "t") == "2026-01-01T00:00:00.000Z"


def test_ints_have_a_declared_range() -> None:
    with pytest.raises(EntryInvalid, match="above"):
        Int().normalize(2**63, "n")
    with pytest.raises(EntryInvalid, match="below"):
        Int().normalize(-(10**5000), "n")
    assert Int().normalize(2**63 - 1, "n") == 2**63 - 1
    with pytest.raises(ValueError):
        Int(0, 2**64)


@pytest.mark.parametrize("value", ["a\x00b", "\ud800", "ok\udfff"])
def test_strings_refuse_nul_and_lone_surrogates(value: str) -> None:
    with pytest.raises(EntryInvalid) as caught:
        String(100).normalize(value, "name")
    assert caught.value.code == "invalid_text"
    assert String(100).normalize("line\nbreak\ttab", "name") == "line\nbreak\ttab"


def test_names_refuse_control_characters() -> None:
    for bad in ("c\x00", "c\n", "\ud800", "", "x" * 129, 7):
        with pytest.raises(EntryInvalid) as caught:
            check_record_id(bad)
        assert caught.value.code == "invalid_record_id"
        with pytest.raises(EntryInvalid):
            Reference("customers").normalize(bad, "customer_id")
    check_record_id("客户-1")


def test_emails_and_enums_refuse_hostile_text_by_length_first() -> None:
    with pytest.raises(EntryInvalid):
        Email().normalize("a@" + "b." * 100_000 + "c", "email")
    with pytest.raises(EntryInvalid):
        Email().normalize("a\ud800@b.cn", "email")
    with pytest.raises(EntryInvalid):
        Enum(("a", "b")).normalize(["a"], "stage")

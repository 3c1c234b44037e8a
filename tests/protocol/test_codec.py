"""Encoding round trips, canonical form, and refusal of every kind of bad input."""

from __future__ import annotations

import contextlib
import gzip
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import (
    Ack,
    Batch,
    Entry,
    ProtocolError,
    Result,
    UnsupportedVersion,
    compress,
    decode_ack,
    decode_batch,
    decompress,
    encode_ack,
    encode_batch,
)
from protocol.constants import MAX_ENTRIES_PER_BATCH, PROTOCOL_VERSION
from tests.whole import UNSET, whole


def entry(seq: int, tx: str = "t1", **over: object) -> Entry:
    base: dict[str, object] = dict(
        op_id=f"op-{seq}",
        device_id="d1",
        seq=seq,
        tx_id=tx,
        tx_count=UNSET,
        hlc=f"0000000000001-{seq:05d}-d1",
        collection="customers",
        record_id="c1",
        kind="upsert",
        fields={"name": "Zhang", "notes": None},
        schema_version=1,
    )
    base.update(over)
    return Entry(**base)  # type: ignore[arg-type]


def batch(*entries: Entry, version: str = PROTOCOL_VERSION) -> Batch:
    return Batch(version, "b1", "d1", whole(entries or (entry(1),)))


def test_batch_round_trip_keeps_null_fields() -> None:
    original = batch(entry(1), entry(2), entry(3, tx="t2"))
    decoded = decode_batch(encode_batch(original))
    assert decoded == original
    assert decoded.entries[0].fields == {"name": "Zhang", "notes": None}


def test_encoding_is_canonical() -> None:
    data = encode_batch(batch())
    assert data == json.dumps(json.loads(data), sort_keys=True, separators=(",", ":")).encode()
    assert b" " not in data.replace(b'"', b"")


def test_ack_round_trip_with_nested_original() -> None:
    ack = Ack(
        "b1",
        (
            Result("op-1", "applied"),
            Result(
                "op-2", "duplicate", original=Result("op-2", "rejected", "too_long", "name", "x")
            ),
        ),
    )
    assert decode_ack(encode_ack(ack)) == ack
    assert decode_ack(encode_ack(ack)).results[1].outcome.code == "too_long"


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda d: d.pop("batch_id"), "batch_id"),
        (lambda d: d.update(entries=[]), "entries"),
        (lambda d: d["entries"][0].update(seq="1"), "entries"),
        (lambda d: d["entries"][0].update(kind="merge"), "entries"),
        (lambda d: d["entries"][0].update(device_id="d2"), "entries"),
        (lambda d: d["entries"][0].update(fields=[1]), "entries"),
        (lambda d: d["entries"].append(dict(d["entries"][0])), "entries"),
        (lambda d: d.update(extra=1), "extra"),
    ],
)
def test_malformed_batches_name_the_field(mutate: object, where: str) -> None:
    raw = json.loads(encode_batch(batch()))
    mutate(raw)  # type: ignore[operator]
    with pytest.raises(ProtocolError) as info:
        decode_batch(json.dumps(raw).encode())
    assert where in info.value.errors


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_numbers_are_refused(constant: str) -> None:
    data = encode_batch(batch()).replace(b'"Zhang"', constant.encode())
    with pytest.raises(ProtocolError, match="not a JSON value"):
        decode_batch(data)


def test_seq_order_and_contiguous_transactions_are_enforced() -> None:
    with pytest.raises(ProtocolError, match="malformed"):
        decode_batch(encode_batch(batch(entry(2), entry(1))))
    with pytest.raises(ProtocolError):
        decode_batch(encode_batch(batch(entry(1, "a"), entry(2, "b"), entry(3, "a"))))


def test_too_many_entries() -> None:
    many = tuple(entry(i) for i in range(1, MAX_ENTRIES_PER_BATCH + 2))
    with pytest.raises(ProtocolError):
        decode_batch(encode_batch(batch(*many)))


@pytest.mark.parametrize("version", ["1.0", "3.0", "0.9"])
def test_other_major_is_upgrade_required(version: str) -> None:
    with pytest.raises(UnsupportedVersion):
        decode_batch(encode_batch(batch(version=version)))


@pytest.mark.parametrize("version", [None, 1, "one", "1"])
def test_version_must_be_major_minor(version: object) -> None:
    raw = json.loads(encode_batch(batch()))
    raw["protocol_version"] = version
    with pytest.raises(ProtocolError) as info:
        decode_batch(json.dumps(raw).encode())
    assert not isinstance(info.value, UnsupportedVersion)


def test_minor_versions_are_compatible() -> None:
    assert decode_batch(encode_batch(batch(version="2.7"))).protocol_version == "2.7"


def test_compression_round_trip_and_limits() -> None:
    data = encode_batch(batch())
    assert decompress(compress(data), "gzip") == data
    assert decompress(data, None) == data
    bomb = gzip.compress(b"0" * 10_000)
    with pytest.raises(ProtocolError, match="inflates"):
        decompress(bomb, "gzip", limit=1000)
    with pytest.raises(ProtocolError, match="truncated"):
        decompress(compress(data)[:-10], "gzip")
    with pytest.raises(ProtocolError, match="not supported"):
        decompress(data, "br")
    with pytest.raises(ProtocolError, match="gzip"):
        decompress(b"not gzip at all", "gzip")


@given(st.binary(max_size=2000))
def test_arbitrary_bytes_only_raise_protocol_errors(data: bytes) -> None:
    for decode in (decode_batch, decode_ack):
        with contextlib.suppress(ProtocolError):
            decode(data)
    with contextlib.suppress(ProtocolError):
        decompress(data, "gzip")


def test_valid_batch_fed_byte_by_byte_prefixes_never_decode() -> None:
    data = encode_batch(batch())
    for cut in range(len(data)):
        with pytest.raises(ProtocolError):
            decode_batch(data[:cut])

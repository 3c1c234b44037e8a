"""A batch carries each transaction whole: every entry says how many its transaction holds."""

from __future__ import annotations

import json

import pytest
from marshmallow import ValidationError

from protocol import PROTOCOL_VERSION, Batch, Entry, ProtocolError, decode_batch, encode_batch
from protocol._decode import load_batch
from protocol._schemas import BatchSchema
from protocol.constants import MAX_ENTRIES_PER_BATCH


def entry(seq: int, tx: str, tx_count: int) -> Entry:
    return Entry(
        op_id=f"op-{seq}",
        device_id="d1",
        seq=seq,
        tx_id=tx,
        tx_count=tx_count,
        hlc=f"1700000000000-{seq:05d}-d1",
        collection="customers",
        record_id=f"c{seq}",
        kind="upsert",
        fields={"name": "Zhang"},
        schema_version=1,
    )


def wire_of(*entries: Entry) -> bytes:
    return encode_batch(Batch(PROTOCOL_VERSION, "b1", "d1", entries))


def refusal(data: bytes) -> str:
    """The message a refused batch gets; the schema refuses it with the same words."""
    with pytest.raises(ProtocolError) as caught:
        decode_batch(data)
    with pytest.raises(ValidationError) as schema:
        BatchSchema().load(json.loads(data))
    assert schema.value.messages == caught.value.errors
    return " ".join(caught.value.errors["entries"])


def test_whole_transactions_decode() -> None:
    batch = Batch(
        PROTOCOL_VERSION, "b1", "d1", (entry(1, "a", 2), entry(2, "a", 2), entry(3, "b", 1))
    )
    assert decode_batch(encode_batch(batch)) == batch


def test_a_transaction_missing_an_entry_is_refused() -> None:
    message = refusal(wire_of(entry(1, "a", 1), entry(2, "b", 3), entry(3, "b", 3)))
    assert "entries 1..2 is not whole: tx_count is 3, the batch carries 2" in message


def test_a_transaction_with_an_extra_entry_is_refused() -> None:
    message = refusal(wire_of(entry(1, "a", 1), entry(2, "a", 1)))
    assert "disagree" not in message
    assert "tx_count is 1, the batch carries 2" in message


def test_entries_that_disagree_on_tx_count_are_refused() -> None:
    message = refusal(wire_of(entry(1, "a", 2), entry(2, "a", 3), entry(3, "a", 3)))
    assert "entries 0..2 disagree on tx_count ([2, 3])" in message


@pytest.mark.parametrize("value", [0, -1, MAX_ENTRIES_PER_BATCH + 1, 2**70, True, "1", 1.0, None])
def test_tx_count_outside_its_range_or_type_is_refused(value: object) -> None:
    raw = json.loads(wire_of(entry(1, "a", 1)))
    raw["entries"][0]["tx_count"] = value
    data = json.dumps(raw).encode()
    with pytest.raises(ProtocolError) as caught:
        decode_batch(data)
    if value == 2**70:  # refused as a number before any schema sees it
        assert caught.value.errors == {"_schema": ["integer out of range"]}
    else:
        assert "tx_count" in caught.value.errors["entries"][0]


def test_tx_count_is_required() -> None:
    raw = json.loads(wire_of(entry(1, "a", 1)))
    del raw["entries"][0]["tx_count"]
    with pytest.raises(ProtocolError) as caught:
        decode_batch(json.dumps(raw).encode())
    assert "tx_count" in caught.value.errors["entries"][0]


def test_a_full_batch_of_one_transaction_is_whole() -> None:
    n = MAX_ENTRIES_PER_BATCH
    raw = json.loads(wire_of(*(entry(i, "a", n) for i in range(1, n + 1))))
    assert load_batch(raw) == BatchSchema().load(raw)

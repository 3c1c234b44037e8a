"""The decoders' fast paths may only be narrower than the marshmallow schemas: wherever
they answer, the schema gives the same value; everywhere else the schema decides."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from protocol import ProtocolError, decode_ack, decode_batch
from protocol._schemas import AckSchema, BatchSchema, fast_ack, fast_batch
from protocol.codec import canonical_json
from protocol.constants import PROTOCOL_VERSION

_BATCH = BatchSchema()
_ACK = AckSchema()


def _entry(i: int, tx: int, tx_count: int) -> dict[str, Any]:
    return {
        "op_id": f"op-{i}",
        "device_id": "d1",
        "seq": i + 1,
        "tx_id": f"tx-{tx}",
        "tx_count": tx_count,
        "hlc": f"1700000000000-{i:05d}-d1",
        "collection": "customers",
        "record_id": f"c{i}",
        "kind": "upsert",
        "fields": {"name": f"C {i}", "phone": None},
        "schema_version": 1,
    }


def _valid_batch(n: int) -> dict[str, Any]:
    # Transactions of two entries (the last one of one when n is odd).
    entries = [_entry(i, i // 2, min(2, n - i // 2 * 2)) for i in range(n)]
    return {
        "protocol_version": PROTOCOL_VERSION,
        "batch_id": "b1",
        "device_id": "d1",
        "entries": entries,
    }


_odd = st.sampled_from(
    [
        None,
        True,
        False,
        0,
        -1,
        1,
        2**70,
        1.0,
        "",
        "x",
        "x" * 65,
        "x" * 129,
        [],
        {},
        {"": 1},
        2**63 - 1,
        2**63,
        2**31 - 1,
        2**31,
        "c\x00",
        "c\n",
        "c\x85",
        "c\ud800",
        {"c\x00": 1},
    ]
)


def _slots(raw: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """Every (dict, key) a mutation may change: batch members, entry members, fields."""
    found = [(raw, k) for k in sorted(raw)]
    entries = raw.get("entries")
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict):
            found += [(entry, k) for k in sorted(entry)]
            if isinstance(entry.get("fields"), dict):
                found += [(entry["fields"], k) for k in sorted(entry["fields"])]
    return found


@st.composite
def _mutated_batches(draw: st.DrawFn) -> dict[str, Any]:
    raw = _valid_batch(draw(st.integers(1, 3)))
    for _ in range(draw(st.integers(0, 3))):
        slots = _slots(raw)
        target, key = slots[draw(st.integers(0, len(slots) - 1))]
        action = draw(st.sampled_from(["set", "set", "delete", "add"]))
        if action == "set":
            target[key] = draw(
                _odd | st.sampled_from(["upsert", "delete", "d1", "op-0", "tx-0", 500, 501])
            )
        elif action == "delete":
            del target[key]
        else:
            target[draw(st.sampled_from(["extra", "x" * 129, ""]))] = draw(_odd)
    return raw


def _schema_load(schema: Any, raw: dict[str, Any]) -> Any:
    try:
        return schema.load(copy.deepcopy(raw))
    except ValidationError:
        return "refused"


@settings(max_examples=1500, derandomize=True)
@given(_mutated_batches())
def test_fast_batch_agrees_with_the_schema_wherever_it_answers(raw: dict[str, Any]) -> None:
    fast = fast_batch(copy.deepcopy(raw))
    if fast is not None:
        assert _schema_load(_BATCH, raw) == fast


@pytest.mark.parametrize("n", [1, 5, 500])
def test_fast_batch_answers_plainly_valid_batches(n: int) -> None:
    raw = _valid_batch(n)
    assert fast_batch(raw) == _BATCH.load(raw)
    assert decode_batch(canonical_json(raw)) == _BATCH.load(raw)


_results = st.fixed_dictionaries(
    {"op_id": st.sampled_from(["o1", "", "x" * 65, "o\x00"]) | _odd},
    optional={
        "status": st.sampled_from(["applied", "duplicate", "rejected", "nope"]) | _odd,
        "code": _odd,
        "field": st.none() | st.text(max_size=3),
        "message": st.text(max_size=3) | _odd,
        "extra": _odd,
    },
)
_results = st.recursive(
    _results,
    lambda inner: st.builds(lambda r, o: {**r, "original": o}, _results, inner),
    max_leaves=3,
)


@settings(max_examples=400, derandomize=True)
@given(
    st.lists(_results, max_size=3),
    st.sampled_from(["b1", "", 7, "b\x00"]),
    st.sampled_from(["absent", None, 0, -1, 1_700_000_000_000, 10**15, True, "1"]),
)
def test_fast_ack_agrees_with_the_schema_wherever_it_answers(
    results: list[dict[str, Any]], batch_id: object, server_time: object
) -> None:
    raw: dict[str, Any] = {"batch_id": batch_id, "results": results}
    if server_time != "absent":
        raw["server_time_ms"] = server_time
    fast = fast_ack(copy.deepcopy(raw))
    if fast is not None:
        assert _schema_load(_ACK, raw) == fast


def test_what_the_fast_path_refuses_the_schema_still_explains() -> None:
    raw = _valid_batch(2)
    raw["entries"][1]["seq"] = True
    with pytest.raises(ProtocolError) as caught:
        decode_batch(canonical_json(raw))
    assert "seq" in str(caught.value.errors)
    with pytest.raises(ProtocolError):
        decode_ack(b'{"batch_id": "b1", "results": [{"op_id": "o"}]}')

"""The canonical bytes are a contract: stored entries and signatures depend on them."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from protocol import decode_batch, to_wire
from protocol.codec import (
    assemble_batch,
    batch_overhead,
    batch_size,
    canonical_json,
    decode_entry,
    decode_result,
    encode_batch,
    encode_entry,
    encode_result,
    entry_digest,
)
from protocol.model import Batch, Entry, Result

ENTRY = Entry(
    op_id="0190a6c2-0000-7000-8000-000000000001",
    device_id="dev-1",
    seq=7,
    tx_id="0190a6c2-0000-7000-8000-0000000000aa",
    tx_count=2,
    hlc="1767225600000-00003-dev-1",
    collection="customers",
    record_id="c-42",
    kind="upsert",
    fields={"name": "王芳", "phone": "13912345678", "notes": None, "score": 7},
    schema_version=1,
)

#: Written once by hand from the rules in docs/protocol.md; never regenerate it.
PINNED_ENTRY = (
    '{"collection":"customers","device_id":"dev-1","fields":{"name":"王芳",'
    '"notes":null,"phone":"13912345678","score":7},"hlc":"1767225600000-00003-dev-1",'
    '"kind":"upsert","op_id":"0190a6c2-0000-7000-8000-000000000001","record_id":"c-42",'
    '"schema_version":1,"seq":7,"tx_count":2,"tx_id":"0190a6c2-0000-7000-8000-0000000000aa"}'
).encode()


def test_an_entry_encodes_to_its_pinned_bytes() -> None:
    assert encode_entry(ENTRY) == PINNED_ENTRY


def test_the_digest_is_pinned_and_ignores_tx_count() -> None:
    digest = entry_digest(ENTRY)
    assert digest == hashlib.sha256(PINNED_ENTRY.replace(b',"tx_count":2', b"")).hexdigest()
    assert entry_digest(Entry(**{**_members(ENTRY), "tx_count": 1})) == digest
    assert entry_digest(Entry(**{**_members(ENTRY), "seq": 8})) != digest


def test_a_batch_of_stored_bytes_is_the_encoded_batch() -> None:
    batch = Batch("2.0", "b-1", "dev-1", (ENTRY, ENTRY))
    stored = [encode_entry(e) for e in batch.entries]
    assembled = assemble_batch("2.0", "b-1", "dev-1", stored)
    assert assembled == encode_batch(batch)
    overhead = batch_overhead("2.0", "b-1", "dev-1")
    assert batch_size(overhead, [len(b) for b in stored]) == len(assembled)


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_values = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | _text


@given(
    st.lists(
        st.builds(
            Entry,
            op_id=_text.filter(bool),
            device_id=st.just("d"),
            seq=st.integers(1, 2**63 - 1),
            tx_id=_text.filter(bool),
            tx_count=st.integers(1, 500),
            hlc=_text,
            collection=_text,
            record_id=_text,
            kind=st.sampled_from(["upsert", "patch", "delete"]),
            fields=st.dictionaries(_text, _values, max_size=4),
            schema_version=st.integers(1, 2**31 - 1),
        ),
        max_size=4,
    ),
    _text,
)
def test_assembling_equals_encoding_for_any_batch(entries: list[Entry], batch_id: str) -> None:
    batch = Batch("2.0", batch_id, "d", tuple(entries))
    stored = [encode_entry(e) for e in entries]
    assert assemble_batch("2.0", batch_id, "d", stored) == encode_batch(batch)
    assert batch_size(batch_overhead("2.0", batch_id, "d"), [len(b) for b in stored]) == len(
        encode_batch(batch)
    )


def test_results_round_trip_through_their_bytes() -> None:
    original = Result("o1", "rejected", "too_long", "notes", "is 2001 characters")
    duplicate = Result("o1", "duplicate", original=original)
    for result in (original, duplicate, Result("o2", "applied")):
        assert decode_result(encode_result(result)) == result
    assert encode_result(Result("o2", "applied")) == b'{"op_id":"o2","status":"applied"}'


def _members(entry: Entry) -> dict[str, object]:
    return {name: getattr(entry, name) for name in Entry.__dataclass_fields__}


# -- canonical_json: the fast encoder writes exactly what the json definition writes ----

#: Every kind of value a field (or any wire member) can hold, with its canonical bytes.
PINNED_VALUES: list[tuple[object, bytes]] = [
    (None, b"null"),
    (True, b"true"),
    (False, b"false"),
    (0, b"0"),
    (-(2**63), b"-9223372036854775808"),
    (2**63 - 1, b"9223372036854775807"),
    (2**64 - 1, b"18446744073709551615"),
    (2**64, b"18446744073709551616"),  # past msgspec's range: json writes it
    (-(10**19) - 1, b"-10000000000000000001"),
    (99999999999999999999, b"99999999999999999999"),  # the longest literal the wire takes
    ("王芳 café 😀", '"王芳 café 😀"'.encode()),
    ('q"b\\s/', b'"q\\"b\\\\s/"'),
    ("\b\f\n\r\t", b'"\\b\\f\\n\\r\\t"'),
    ("\x01\x1f", b'"\\u0001\\u001f"'),
    ("\x7f\x85\u2028\u2029\ufeff", '"\x7f\x85\u2028\u2029\ufeff"'.encode()),
    ([1, "a", None, [True, {}]], b'[1,"a",null,[true,{}]]'),
    ({"b": 1, "a": {"d": [], "c": None}}, b'{"a":{"c":null,"d":[]},"b":1}'),
    ({"é": 1, "z": 2, "Z": 3, "": 4, "😀": 5}, '{"":4,"Z":3,"z":2,"é":1,"😀":5}'.encode()),
]


@pytest.mark.parametrize(("value", "expected"), PINNED_VALUES)
def test_every_value_kind_has_its_pinned_bytes(value: object, expected: bytes) -> None:
    assert canonical_json(value) == expected
    assert canonical_json(value) == _definition(value)


def test_what_json_refuses_is_still_refused() -> None:
    for bad in ("\ud800", {"x": "\udfff"}, float("nan"), {1j: 1}, object()):
        with pytest.raises((ValueError, TypeError)):
            canonical_json(bad)


_scalar_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_wire_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**19) + 1, 10**20 - 1)  # the longest literals the wire takes
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1e16, 1e-5, 1e-7, 1e21, -0.0, 0.1, 2.0**70, 5e-324])
    | _scalar_text
    | st.sampled_from(["\x00", "\x1f", "\x7f", '"', "\\", "\u2028", "😀"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_scalar_text, inner, max_size=4),
    max_leaves=16,
)


@settings(max_examples=3000, derandomize=True)
@given(_wire_values)
def test_canonical_json_is_the_json_definition_for_every_wire_value(value: object) -> None:
    assert canonical_json(value) == _definition(value)


@given(_wire_values)
def test_any_wire_value_keeps_its_bytes_through_the_decoder(value: object) -> None:
    assume("\\u0000" not in json.dumps(value))  # NUL is refused at the edge
    entry = Entry(**{**_members(ENTRY), "tx_count": 1, "fields": {"v": value}})
    data = encode_batch(Batch("2.0", "b-1", "dev-1", (entry,)))
    assert data == _definition(to_wire(decode_batch(data)))


@pytest.mark.parametrize("value", [1.5, 1e16, 1e-7, 1e21, -0.0, 2**64, -(2**63) - 1, 10**19 + 0.5])
def test_values_the_fast_encoder_writes_differently_go_to_json(value: object) -> None:
    for holder in (value, [value], {"k": {"j": [value]}}, (value,)):
        assert canonical_json(holder) == _definition(holder)
    for fields in ({"v": [value]}, {"v": value, "w": "x"}):  # nested, and flat
        entry = Entry(**{**_members(ENTRY), "fields": fields})
        assert encode_entry(entry) == _definition(_members(entry))


def _definition(value: object) -> bytes:
    """Canonical JSON as docs/protocol.md defines it: the standard library's json."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def test_stored_entry_bytes_decode_to_the_entry() -> None:
    assert decode_entry(PINNED_ENTRY) == ENTRY
    assert decode_entry(PINNED_ENTRY.decode()) == ENTRY

"""The canonical bytes are a contract: stored entries and signatures depend on them."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from protocol.codec import (
    assemble_batch,
    batch_overhead,
    batch_size,
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

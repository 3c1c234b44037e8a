"""to_wire builds plain dicts without dataclasses.asdict; it must give asdict's answer."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from protocol import PROTOCOL_VERSION, Ack, Batch, Command, Entry, Result, encode_batch, to_wire
from protocol.codec import canonical_json


def _reference(value: Any) -> Any:
    """The former implementation: asdict, then drop None members outside ``fields``
    (and an empty ``commands``: an ack without commands is a 2.0 ack)."""

    def prune(v: Any) -> Any:
        if isinstance(v, dict):
            return {
                k: (x if k == "fields" else prune(x))
                for k, x in v.items()
                if (x is not None or k == "fields") and not (k == "commands" and not x)
            }
        if isinstance(v, list | tuple):
            return [prune(x) for x in v]
        return v

    return prune(dataclasses.asdict(value))


_values = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
_fields = st.dictionaries(
    st.text(min_size=1, max_size=5), _values | st.lists(_values, max_size=2), max_size=4
)
_entries = st.builds(
    Entry,
    op_id=st.text(min_size=1, max_size=5),
    device_id=st.just("d"),
    seq=st.integers(1, 10),
    tx_id=st.text(min_size=1, max_size=3),
    tx_count=st.integers(1, 500),
    hlc=st.just("0000000000000-00000-d"),
    collection=st.just("customers"),
    record_id=st.text(min_size=1, max_size=3),
    kind=st.sampled_from(["upsert", "patch", "delete"]),
    fields=_fields,
    schema_version=st.integers(1, 3),
)
_results = st.builds(
    Result,
    op_id=st.text(max_size=3),
    status=st.sampled_from(["applied", "rejected"]),
    code=st.none() | st.text(max_size=3),
    field=st.none() | st.text(max_size=3),
    message=st.none() | st.text(max_size=3),
)
_results = _results | st.builds(
    Result, op_id=st.text(max_size=3), status=st.just("duplicate"), original=_results
)


@given(st.lists(_entries, max_size=4))
def test_a_batch_is_what_asdict_made_it(entries: list[Entry]) -> None:
    batch = Batch(PROTOCOL_VERSION, "b", "d", tuple(entries))
    assert to_wire(batch) == _reference(batch)
    assert encode_batch(batch) == canonical_json(_reference(batch))


_commands = st.builds(
    Command,
    command_id=st.text(max_size=3),
    kind=st.sampled_from(["resubmit", "discard"]),
    op_id=st.text(max_size=3),
    reason=st.text(max_size=3),
)


@given(st.lists(_results, max_size=4), st.lists(_commands, max_size=2))
def test_an_ack_is_what_asdict_made_it(results: list[Result], commands: list[Command]) -> None:
    ack = Ack("b", tuple(results), 5, tuple(commands))
    assert to_wire(ack) == _reference(ack)
    assert ("commands" in to_wire(ack)) == bool(commands)


def test_to_wire_copies_fields() -> None:
    entry = Entry("o", "d", 1, "t", 1, "h", "customers", "c", "upsert", {"n": [1]}, 1)
    wire = to_wire(Batch(PROTOCOL_VERSION, "b", "d", (entry,)))
    wire["entries"][0]["fields"]["n"].append(2)
    assert entry.fields == {"n": [1]}

"""records.merge_stored is conflict.merge_fields on the stored form (doc + clock map)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from conflict import Hlc, Merged, Policy, Write, last_writer_wins, merge_fields
from server_sync.records import merge_stored

_FIELDS = ("name", "phone", "__deleted__")
_stamps = st.builds(Hlc, st.integers(0, 3), st.integers(0, 2), st.sampled_from(["d1", "d2"]))
_values = st.sampled_from([None, 0, 1, True, False, "a", "b"])
_writes = st.builds(Write, _stamps, _values)


def _joined(current: Write, incoming: Write) -> Merged:
    """A join that makes a new write (neither side stands as it was)."""
    return Merged(Write(max(current.hlc, incoming.hlc), [current.value, incoming.value]))


@given(
    st.dictionaries(st.sampled_from(_FIELDS), _writes),
    st.lists(st.tuples(_stamps, st.dictionaries(st.sampled_from(_FIELDS), _values)), max_size=4),
    st.sampled_from([last_writer_wins, _joined]),
)
def test_merge_stored_gives_merge_fields_state(
    state: dict[str, Write], entries: list[tuple[Hlc, dict[str, Any]]], policy: Policy
) -> None:
    doc: dict[str, Any] = {f: w.value for f, w in state.items()}
    clocks = {f: [w.hlc.wall_ms, w.hlc.counter, w.hlc.node] for f, w in state.items()}
    changed = merge_stored(doc, clocks, entries, policy)
    incoming = [(f, Write(hlc, v)) for hlc, values in entries for f, v in values.items()]
    merged, _ = merge_fields(state, incoming, policy)
    stored = {f: Write(Hlc(*clocks[f]), doc[f]) for f in doc}
    assert stored == merged
    assert [type(w.value) for w in stored.values()] == [type(w.value) for w in merged.values()]
    assert changed == any(w is not state.get(f) for f, w in merged.items())

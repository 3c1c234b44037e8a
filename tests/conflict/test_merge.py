"""Merge policies: last writer wins is commutative, associative and idempotent; ties are
broken by canonical value bytes (the same bytes protocol.codec writes), never by text."""

from __future__ import annotations

import functools

from hypothesis import given
from hypothesis import strategies as st

from conflict import Hlc, Merged, Write, last_writer_wins, merge_fields
from conflict.merge import value_bytes
from protocol import canonical_json

# Few walls, counters and nodes: equal stamps with different values do happen.
stamps = st.builds(
    Hlc, st.integers(0, 3), st.integers(0, 2), st.sampled_from(["a", "b", "B", "a.b", "z~"])
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
writes = st.builds(Write, stamps, st.sampled_from(["x", "y", None, 1, 1.5, ["x"], {"k": 1}]))


def _winner(a: Write, b: Write) -> Write:
    return last_writer_wins(a, b).winner


@given(writes, writes)
def test_commutative(a: Write, b: Write) -> None:
    assert _winner(a, b) == _winner(b, a)


@given(writes, writes, writes)
def test_associative(a: Write, b: Write, c: Write) -> None:
    assert _winner(_winner(a, b), c) == _winner(a, _winner(b, c))


@given(writes)
def test_idempotent_and_nothing_lost(a: Write) -> None:
    assert last_writer_wins(a, a) == Merged(a, None)


@given(writes, writes)
def test_the_loser_is_the_other_write(a: Write, b: Write) -> None:
    merged = last_writer_wins(a, b)
    assert merged.winner in (a, b)
    if merged.loser is None:
        assert a.hlc == b.hlc and value_bytes(a.value) == value_bytes(b.value)
    else:
        assert [merged.winner, merged.loser] in ([a, b], [b, a])


@given(st.lists(writes, min_size=1, max_size=8), st.randoms(use_true_random=False))
def test_any_order_and_repetition_gives_the_same_winner(ws: list[Write], rng: object) -> None:
    shuffled = ws + ws[::-1]
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    assert functools.reduce(_winner, ws) == functools.reduce(_winner, shuffled)


def test_stamps_compare_as_numbers_not_text() -> None:
    # As text "9-…" sorts after "10-…"; as numbers 10 is later.
    older = Write(Hlc(9, 0, "z"), "old")
    newer = Write(Hlc(10, 0, "a"), "new")
    assert last_writer_wins(older, newer) == Merged(newer, older)
    assert last_writer_wins(Write(Hlc(5, 10, "a"), 1), Write(Hlc(5, 9, "z"), 2)).winner.value == 1


def test_equal_stamps_break_ties_by_canonical_value_bytes() -> None:
    stamp = Hlc(1, 0, "n")
    # b'"b"' > b'"a"'; b'{"a":1,"b":2}' regardless of key order given.
    assert _winner(Write(stamp, "a"), Write(stamp, "b")).value == "b"
    one, two = Write(stamp, {"b": 2, "a": 1}), Write(stamp, {"a": 1, "b": 2})
    assert last_writer_wins(one, two) == Merged(one, None)


@given(json_values)
def test_value_bytes_are_protocols_canonical_bytes(value: object) -> None:
    assert value_bytes(value) == canonical_json(value)


@given(
    st.dictionaries(st.sampled_from(["a", "b", "c"]), writes, max_size=3),
    st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), writes), max_size=6),
)
def test_merge_fields_keeps_the_winner_per_field_and_reports_every_loser(
    state: dict[str, Write], incoming: list[tuple[str, Write]]
) -> None:
    merged, lost = merge_fields(state, incoming)
    for field in {*state, *(f for f, _ in incoming)}:
        candidates = [state[field]] if field in state else []
        candidates += [w for f, w in incoming if f == field]
        assert merged[field] == functools.reduce(_winner, candidates)
    # Every write either stands or is reported lost (same-write repeats excepted).
    placed = list(merged.items()) + lost
    for field, write in [*state.items(), *incoming]:
        assert any(f == field and (w == write or w.hlc == write.hlc) for f, w in placed)

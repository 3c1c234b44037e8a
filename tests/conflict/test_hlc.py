"""HLC: monotonic under any wall clock, causal on receive, sortable as text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conflict import Hlc, parse, receive, tick, zero
from conflict.hlc import MAX_COUNTER

walls = st.integers(min_value=0, max_value=10**13 - 1)


@given(st.lists(walls, min_size=1, max_size=50))
def test_tick_is_strictly_monotonic_even_if_the_wall_clock_goes_back(times: list[int]) -> None:
    stamp = zero("a")
    for wall in times:
        nxt = tick(stamp, wall)
        assert nxt > stamp
        assert str(nxt) > str(stamp)
        assert nxt.wall_ms >= wall
        stamp = nxt


@given(walls, walls, walls, st.integers(0, 100), st.integers(0, 100))
def test_receive_is_after_both(w1: int, w2: int, now: int, c1: int, c2: int) -> None:
    local, remote = Hlc(w1, c1, "a"), Hlc(w2, c2, "b")
    merged = receive(local, remote, now)
    assert merged > local
    assert (merged.wall_ms, merged.counter) > (remote.wall_ms, remote.counter)
    assert merged.node == "a"


@given(walls, st.integers(0, MAX_COUNTER), st.text("abcdef0123456789", min_size=1, max_size=12))
def test_text_form_round_trips_and_sorts(wall: int, counter: int, node: str) -> None:
    stamp = Hlc(wall, counter, node)
    assert parse(str(stamp)) == stamp


def test_counter_overflow_moves_wall_forward() -> None:
    assert tick(Hlc(5, MAX_COUNTER, "a"), 5) == Hlc(6, 0, "a")


@pytest.mark.parametrize("text", ["", "123", "0000000000001-00001-", "x000000000001-00001-a"])
def test_parse_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        parse(text)


@pytest.mark.parametrize(
    "text",
    [
        "１７００００００００００１-00001-a",  # full-width digits
        "١٧٠٠٠٠٠٠٠٠٠٠١-00001-a",  # Arabic-Indic digits
        "1700000000000-0000²-a",  # superscript: isdigit() but not a number
        "1700000000000-00001-a\n",
        "1700000000000-00001-a b",
        "1700000000000-00001-a\x00",
        "1700000000000-00001-" + "a" * 45,
        "17000000000000-0001-a",
        "1" * 100_000,
    ],
)
def test_parse_is_strict_ascii(text: str) -> None:
    with pytest.raises(ValueError):
        parse(text)


@given(walls, st.integers(0, MAX_COUNTER), walls, st.integers(0, MAX_COUNTER))
def test_stamps_order_by_their_numbers(w1: int, c1: int, w2: int, c2: int) -> None:
    a, b = parse(str(Hlc(w1, c1, "n"))), parse(str(Hlc(w2, c2, "n")))
    assert (a < b) == ((w1, c1) < (w2, c2))


def test_valid_node() -> None:
    from conflict.hlc import valid_node

    assert valid_node("0f3a9c2e4b5d6e7f8a9b0c1d2e3f4a5b")
    assert valid_node("dev-1")
    assert not valid_node("dev 1")
    assert not valid_node("d" * 45)
    assert not valid_node("")

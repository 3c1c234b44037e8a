"""The outbox state machine as data: every pair of states, legal or not."""

from __future__ import annotations

import itertools

import pytest

from client_sync import State
from client_sync._states import FINAL, TRANSITIONS, check
from client_sync.errors import IllegalTransition, OutboxError

LEGAL = {
    ("pending", "in_flight"),
    ("in_flight", "pending"),
    ("in_flight", "acked"),
    ("in_flight", "parked"),
    ("parked", "resubmitted"),
    ("parked", "discarded"),
}


def test_the_table_is_exactly_the_documented_one() -> None:
    assert {(a.value, b.value) for a, b in TRANSITIONS} == LEGAL


@pytest.mark.parametrize(
    ("src", "dst"), sorted(itertools.product([s.value for s in State], repeat=2))
)
def test_every_move_is_legal_or_raises(src: str, dst: str) -> None:
    if (src, dst) in LEGAL:
        check(src, dst)
        return
    with pytest.raises(IllegalTransition) as caught:
        check(src, dst, op_id="op-1")
    assert (caught.value.src, caught.value.dst, caught.value.op_id) == (src, dst, "op-1")
    assert isinstance(caught.value, OutboxError)
    assert f"from {src} to {dst}" in str(caught.value)


def test_exactly_acked_discarded_and_resubmitted_have_no_way_out() -> None:
    assert {State.ACKED, State.DISCARDED, State.RESUBMITTED} == FINAL


def test_unknown_states_are_illegal_too() -> None:
    with pytest.raises(IllegalTransition, match="from pending to lost"):
        check("pending", "lost")

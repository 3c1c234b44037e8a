"""The outbox state machine as data: the states, and the one table of legal moves.

    pending ──take──▶ in_flight ──ack (applied/duplicate/conflict)──▶ acked
       ▲                 │  │
       └──network error──┘  └──ack (rejected)──▶ parked ──discard──▶ discarded
           / 5xx / crash+reopen  or server_error   │
                                                   └──resubmit──▶ resubmitted

``server_error`` is the client's own verdict: a lone transaction the server failed
on (5xx) ``RetryPolicy.isolate_after`` times in a row while it accepted other
batches (see _isolate.py). It is parked like a rejection, and resubmitted or
discarded the same way.

A resubmit does not put the parked row back to pending: the server already holds a
verdict for its op_id (a replay would only get the same rejection back) and has seen
its seq. The row becomes ``resubmitted`` and the fixed change is recorded as a new
entry (new op_id, seq, hlc, tx_id), so seq stays gap-free and nothing is rewritten.
acked, discarded and resubmitted are final; only acked rows are ever deleted (pruned
after retention, _pruning.py).
"""

from __future__ import annotations

from enum import StrEnum

from .errors import IllegalTransition


class State(StrEnum):
    """Where an outbox entry is in its life."""

    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    ACKED = "acked"
    PARKED = "parked"
    DISCARDED = "discarded"
    RESUBMITTED = "resubmitted"


#: Every legal (from, to) move; anything else raises IllegalTransition.
TRANSITIONS: frozenset[tuple[State, State]] = frozenset(
    {
        (State.PENDING, State.IN_FLIGHT),  # taken into a batch
        (State.IN_FLIGHT, State.PENDING),  # send failed, or found in flight on reopen
        (State.IN_FLIGHT, State.ACKED),  # applied, duplicate or conflict
        (State.IN_FLIGHT, State.PARKED),  # rejected, or server_error: into the data box
        (State.PARKED, State.RESUBMITTED),  # fixed and recorded again as a new entry
        (State.PARKED, State.DISCARDED),  # given up, with an audit row
    }
)

#: States an entry never leaves.
FINAL: frozenset[State] = frozenset(State) - {src for src, _ in TRANSITIONS}


def check(src: State | str, dst: State | str, *, op_id: str | None = None) -> None:
    """Raise IllegalTransition unless ``src -> dst`` is in TRANSITIONS."""
    try:
        move = (State(src), State(dst))
    except ValueError:
        raise IllegalTransition(str(src), str(dst), op_id=op_id) from None
    if move not in TRANSITIONS:
        raise IllegalTransition(move[0].value, move[1].value, op_id=op_id)

"""Merge policies: small pure callables that decide which of two writes of a field stands.

A policy takes the field's current write and an incoming one and returns a Merged:
the write that stands and the one that lost (None when both were the same write),
which is what the conflict log keeps. Policies are total orders or semilattice joins,
so a replica's state depends only on the set of writes it has seen, not on their
order or repetition (a property test proves it for each policy).

``last_writer_wins`` orders writes by their HLC stamp, compared as parsed numbers
(wall_ms, counter) and then the node, and breaks a tie between equal stamps with
different values by the values' canonical JSON bytes (the bytes protocol.codec
writes; a test pins that the two agree), so every replica picks the same winner.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .hlc import Hlc

__all__ = ["Merged", "Policy", "Write", "last_writer_wins", "merge_fields", "value_bytes"]


@dataclass(frozen=True, slots=True)
class Write:
    """One field's value (any JSON value) and the stamp of the entry that wrote it."""

    hlc: Hlc
    value: Any


@dataclass(frozen=True, slots=True)
class Merged:
    """What a policy decided: the write that stands, and the one that lost (if any)."""

    winner: Write
    loser: Write | None = None


#: A merge policy: (current, incoming) -> Merged. Pure, total, order-independent.
Policy = Callable[[Write, Write], Merged]

#: Canonical JSON, as protocol.codec.canonical_json writes it (conflict imports nothing
#: of ours, so the rule is restated here; tests/conflict/test_merge.py pins the match).
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def value_bytes(value: Any) -> bytes:
    """The canonical JSON bytes of ``value``: the tie-break order between equal stamps."""
    return _CANONICAL.encode(value).encode()


def last_writer_wins(current: Write, incoming: Write) -> Merged:
    """The write with the greater stamp; equal stamps: the greater canonical value bytes."""
    a, b = current.hlc, incoming.hlc
    if a.wall_ms != b.wall_ms or a.counter != b.counter or a.node != b.node:
        # Python compares str by code point, which is UTF-8 byte order.
        newer = (b.wall_ms, b.counter, b.node) > (a.wall_ms, a.counter, a.node)
    else:
        mine, theirs = value_bytes(current.value), value_bytes(incoming.value)
        if mine == theirs:
            return Merged(current)
        newer = theirs > mine
    return Merged(incoming, current) if newer else Merged(current, incoming)


def merge_fields(
    state: Mapping[str, Write],
    incoming: Iterable[tuple[str, Write]],
    policy: Policy = last_writer_wins,
) -> tuple[dict[str, Write], list[tuple[str, Write]]]:
    """``state`` with ``incoming`` writes merged in field by field; and (field, loser) pairs."""
    merged = dict(state)
    lost: list[tuple[str, Write]] = []
    for field, write in incoming:
        current = merged.get(field)
        if current is None:
            merged[field] = write
            continue
        outcome = policy(current, write)
        merged[field] = outcome.winner
        if outcome.loser is not None:
            lost.append((field, outcome.loser))
    return merged, lost

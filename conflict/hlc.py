"""Hybrid logical clocks: causally ordered, close to wall time, encoded sortable.

An Hlc is (wall_ms, counter, node). ``tick`` stamps a local event, ``receive``
merges a remote stamp; both never go backwards even if the wall clock does. The
string form sorts lexicographically in the same order as the values, so stores
can compare stamps as plain text.
"""

from __future__ import annotations

from dataclasses import dataclass

_WALL_DIGITS = 13
_COUNTER_DIGITS = 5
MAX_COUNTER = 10**_COUNTER_DIGITS - 1


@dataclass(frozen=True, slots=True, order=True)
class Hlc:
    """One hybrid-logical-clock stamp; ``node`` breaks ties between devices."""

    wall_ms: int
    counter: int
    node: str

    def __str__(self) -> str:
        return f"{self.wall_ms:0{_WALL_DIGITS}d}-{self.counter:0{_COUNTER_DIGITS}d}-{self.node}"


def zero(node: str) -> Hlc:
    """The stamp before any event on ``node``."""
    return Hlc(0, 0, node)


def tick(prev: Hlc, wall_ms: int) -> Hlc:
    """The stamp of a new local event after ``prev`` at wall time ``wall_ms``."""
    if wall_ms > prev.wall_ms:
        return Hlc(wall_ms, 0, prev.node)
    return _bump(prev.wall_ms, prev.counter, prev.node)


def receive(prev: Hlc, remote: Hlc, wall_ms: int) -> Hlc:
    """The local stamp after seeing ``remote`` at wall time ``wall_ms``."""
    wall = max(prev.wall_ms, remote.wall_ms, wall_ms)
    if wall == wall_ms and wall > max(prev.wall_ms, remote.wall_ms):
        return Hlc(wall, 0, prev.node)
    counter = max(
        prev.counter if prev.wall_ms == wall else -1,
        remote.counter if remote.wall_ms == wall else -1,
    )
    return _bump(wall, counter, prev.node)


def parse(text: str) -> Hlc:
    """Parse the string form; raise ValueError if it is not one (callers translate)."""
    wall, _, rest = text.partition("-")
    counter, _, node = rest.partition("-")
    if not (len(wall) == _WALL_DIGITS and wall.isdigit()) or not (
        len(counter) == _COUNTER_DIGITS and counter.isdigit() and node
    ):
        raise ValueError(f"{text!r} is not a hybrid logical clock stamp")
    return Hlc(int(wall), int(counter), node)


def _bump(wall_ms: int, counter: int, node: str) -> Hlc:
    if counter >= MAX_COUNTER:
        return Hlc(wall_ms + 1, 0, node)
    return Hlc(wall_ms, counter + 1, node)

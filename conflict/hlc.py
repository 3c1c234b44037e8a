"""Hybrid logical clocks: causally ordered, close to wall time, encoded sortable.

An Hlc is (wall_ms, counter, node). ``tick`` stamps a local event, ``receive``
merges a remote stamp; both never go backwards even if the wall clock does.

The string form is strict ASCII, "WWWWWWWWWWWWW-CCCCC-node": 13 digits of wall
milliseconds, 5 digits of counter, and a node of 1-44 characters from
[0-9A-Za-z._:~-] (64 characters at most in all). Stamps are untrusted input: they
are parsed with ASCII-only patterns (``str.isdigit`` would take "٣" or "²") and
compared as parsed numbers, never as text, so no spelling of a stamp can sort
after every other one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WALL_DIGITS = 13
_COUNTER_DIGITS = 5
MAX_COUNTER = 10**_COUNTER_DIGITS - 1
MAX_WALL_MS = 10**_WALL_DIGITS - 1

#: Longest node id: the whole stamp stays within 64 characters.
MAX_NODE_LENGTH = 64 - _WALL_DIGITS - _COUNTER_DIGITS - 2
MAX_STAMP_LENGTH = 64

_NODE = re.compile(rf"[0-9A-Za-z._:~-]{{1,{MAX_NODE_LENGTH}}}")
_STAMP = re.compile(
    rf"([0-9]{{{_WALL_DIGITS}}})-([0-9]{{{_COUNTER_DIGITS}}})-([0-9A-Za-z._:~-]{{1,{MAX_NODE_LENGTH}}})"
)


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
    """Parse the strict string form; raise ValueError if it is not one (callers translate)."""
    match = _STAMP.fullmatch(text) if len(text) <= MAX_STAMP_LENGTH else None
    if match is None:
        raise ValueError(f"{text[:MAX_STAMP_LENGTH]!a} is not a hybrid logical clock stamp")
    wall, counter, node = match.groups()
    return Hlc(int(wall), int(counter), node)


def valid_node(node: str) -> bool:
    """Whether ``node`` can stand in a stamp (a device id used as an HLC node)."""
    return len(node) <= MAX_NODE_LENGTH and _NODE.fullmatch(node) is not None


def _bump(wall_ms: int, counter: int, node: str) -> Hlc:
    if counter >= MAX_COUNTER:
        return Hlc(wall_ms + 1, 0, node)
    return Hlc(wall_ms, counter + 1, node)

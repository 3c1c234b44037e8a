"""Test helper: stamp each entry with the size of its transaction in a batch."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable

from protocol import Entry

#: tx_count an entry built by a test helper gets until ``whole`` fills it in.
UNSET = 0


def whole(entries: Iterable[Entry]) -> tuple[Entry, ...]:
    """``entries`` with every UNSET tx_count set to how many entries share its tx_id."""
    entries = tuple(entries)
    sizes = Counter(e.tx_id for e in entries)
    return tuple(
        dataclasses.replace(e, tx_count=sizes[e.tx_id]) if e.tx_count == UNSET else e
        for e in entries
    )

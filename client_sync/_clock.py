"""Server-corrected time for HLC stamps, and recovery from a device clock that runs ahead.

Every ack carries the server's clock (``server_time_ms``). The device keeps the
offset to its own clock (persisted in the store's meta) and stamps with corrected
time. A server refuses a stamp more than MAX_CLOCK_AHEAD_MS ahead of its clock
(``clock_ahead``, the whole transaction parked); then ``heal`` pulls the device's
last HLC back to the bound (never below it, so the device's later changes still
order after its accepted ones) and resubmits the parked transactions, restamped.
It only resubmits an entry whose stamp is beyond the bound by corrected time, so a
restamped entry is never resubmitted again by this rule: no loop.
"""

from __future__ import annotations

from collections.abc import Callable

from conflict import hlc
from protocol.constants import MAX_CLOCK_AHEAD_MS
from protocol.model import Ack

from ._batches import OutgoingBatch
from ._databox import DataBox
from ._store import Store

#: Store meta key holding the learnt offset (server minus device clock, ms).
OFFSET_KEY = "clock_offset_ms"

#: Offset change (ms) worth a write to the store; smaller changes are network jitter.
PERSIST_STEP_MS = 1_000


class ServerClock:
    """The device clock plus the offset learnt from the server's acks."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.offset_ms = 0

    def now(self) -> float:
        """Corrected time in seconds since the epoch (what the outbox stamps with)."""
        return self._clock() + self.offset_ms / 1000

    def load(self, store: Store) -> None:
        """Take the offset an earlier run learnt."""
        stored = store.get_meta(OFFSET_KEY)
        self.offset_ms = int(stored) if stored else 0

    def observe(self, store: Store, server_time_ms: int) -> None:
        """Learn the offset from one ack; persist it when it moved more than jitter."""
        offset = server_time_ms - int(self._clock() * 1000)
        if abs(offset - self.offset_ms) >= PERSIST_STEP_MS:
            store.set_meta(OFFSET_KEY, str(offset))
        self.offset_ms = offset


def heal(box: DataBox, clock: ServerClock, batch: OutgoingBatch, ack: Ack) -> list[str]:
    """After an applied ack: correct the clock, resubmit ``clock_ahead`` transactions.

    Returns the new op_ids of the resubmitted entries (one per parked transaction).
    """
    if ack.server_time_ms is None:
        return []
    outbox = box.outbox
    clock.observe(outbox.store, ack.server_time_ms)
    limit = int(clock.now() * 1000) + MAX_CLOCK_AHEAD_MS
    if outbox.recorder.last_hlc.wall_ms > limit:
        outbox.recorder.pull_back(hlc.Hlc(limit, 0, outbox.device_id))
    done: set[str] = set()
    resubmitted: list[str] = []
    for op_id, result in zip(batch.op_ids, ack.results, strict=True):
        if result.outcome.code != "clock_ahead":
            continue
        entry = box.reads.entry(op_id)
        if entry.tx_id not in done and hlc.parse(entry.hlc).wall_ms > limit:
            done.add(entry.tx_id)
            reason = "clock_ahead: restamped with the server's time"
            resubmitted.append(box.resubmit(op_id, entry.fields, entry.schema_version, reason))
    return resubmitted

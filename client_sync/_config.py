"""OutboxConfig: the outbox's tuning, as a frozen dataclass with documented defaults."""

from __future__ import annotations

from dataclasses import dataclass

from protocol.constants import (
    MAX_BATCH_BYTES,
    MAX_ENTRIES_PER_BATCH,
    MAX_ENTRIES_PER_METERED_BATCH,
    PROTOCOL_VERSION,
)

#: A week, in seconds: how long acknowledged journal events and entries are kept.
WEEK = 7 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    """Outbox tuning; batch limits default to the protocol's and may only be lower."""

    #: How long a write waits for another connection's lock before failing.
    busy_timeout_ms: int = 5_000
    #: Entries per batch on an unmetered channel; also the most one transaction may hold.
    max_entries: int = MAX_ENTRIES_PER_BATCH
    #: Entries per batch on a metered (cellular) channel.
    max_metered_entries: int = MAX_ENTRIES_PER_METERED_BATCH
    #: Uncompressed bytes per batch; also the most one transaction may take.
    max_batch_bytes: int = MAX_BATCH_BYTES
    #: Protocol version stamped on every batch; only an old app build (or a
    #: simulation of one) speaks another than the current one.
    protocol_version: str = PROTOCOL_VERSION
    #: WAL pages that trigger a checkpoint after a commit (SQLite's default); crash
    #: tests set it small so that kills often land in the middle of a checkpoint.
    wal_autocheckpoint: int = 1_000
    #: Free bytes the outbox's filesystem must keep: under it, ``record()`` raises
    #: StorageLow and stores nothing (0 turns the check off). 32 MiB leaves SQLite room
    #: for its WAL and a checkpoint while the rep frees space.
    min_free_bytes: int = 32 * 1024 * 1024
    #: Seconds after which a sync with nothing to send still reports (to get commands).
    report_every: float = 300.0
    #: Seconds an acknowledged journal event (and a reported command outcome) is kept.
    journal_retention: float = WEEK
    #: Seconds an acknowledged entry is kept after its ack, then pruned (the seq and
    #: HLC floor survives in meta).
    entry_retention: float = WEEK
    #: Rows deleted per pruning transaction: ``record()`` waits for one chunk at most.
    prune_chunk: int = 500

    def __post_init__(self) -> None:
        if not 1 <= self.max_metered_entries <= self.max_entries <= MAX_ENTRIES_PER_BATCH:
            raise ValueError(
                f"need 1 <= max_metered_entries <= max_entries <= {MAX_ENTRIES_PER_BATCH}"
            )
        if not 1_024 <= self.max_batch_bytes <= MAX_BATCH_BYTES:
            raise ValueError(f"max_batch_bytes must be within 1024..{MAX_BATCH_BYTES}")
        if self.busy_timeout_ms < 0:
            raise ValueError("busy_timeout_ms must be >= 0")
        if self.min_free_bytes < 0:
            raise ValueError("min_free_bytes must be >= 0 (0: no storage check)")
        if min(self.report_every, self.journal_retention, self.entry_retention) < 0:
            raise ValueError("report_every and the retention periods must be >= 0")
        if self.prune_chunk < 1:
            raise ValueError("prune_chunk must be >= 1")
        if self.wal_autocheckpoint < 1:
            raise ValueError("wal_autocheckpoint must be >= 1 (0 would let the WAL grow forever)")

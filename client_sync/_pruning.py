"""Pruning: acknowledged entries, journal events and command outcomes leave after retention.

The background loop calls ``Pruner.run`` after each drain pass. Each step deletes at
most ``prune_chunk`` rows of one table in its own short write transaction, so
``record()`` waits for one chunk at most, and ``halt`` (stop/close) ends the run
between chunks. What is pruned, and what survives:

- ``entries`` in state ``acked`` whose ack (``updated_at``, the outbox's corrected
  clock) is older than ``entry_retention``. The next seq and the last HLC stamp are
  written to the floor in meta first, in the same transaction (_recording.py), so a
  device whose every row was pruned still numbers and stamps after them. Parked,
  pending, in-flight, discarded and resubmitted rows are never pruned (the data box
  and its audit rows keep them).
- ``journal`` events acknowledged longer ago than ``journal_retention`` (the
  device's own clock); unacknowledged events are never pruned.
- ``commands`` whose outcome was reported longer ago than ``journal_retention``:
  the server stops sending a command once it holds its outcome, so the id is no
  longer needed to refuse a second run.
- ``receipts`` answered longer ago than ``RECEIPT_RETENTION`` (_boxview.py's
  ``prune_receipts``): a receipt is its own row, so pruning its entry leaves it.

Each table remembers when its oldest remaining candidate becomes due, so a loop
pass with nothing due runs no query.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ._boxview import RECEIPT_RETENTION, prune_receipts
from ._outbox import Outbox
from ._recording import write_floor
from ._states import State
from ._tables import commands_t, entries_t, journal_t, receipts_t

_ACKED = entries_t.c.state == State.ACKED.value


class Pruner:
    """Deletes what retention no longer keeps, a chunk per transaction."""

    def __init__(self, outbox: Outbox, clock: Callable[[], float]) -> None:
        self._outbox = outbox
        self._store = outbox.store
        self._config = outbox.config
        self._clock = clock
        #: Per table, the time before which nothing in it is due (0: look).
        self._due = {"entries": 0.0, "journal": 0.0, "commands": 0.0, "receipts": 0.0}

    def run(self, halt: threading.Event | None = None) -> dict[str, int]:
        """Prune every table chunk by chunk until nothing is due; rows deleted per table."""
        deleted_from = dict.fromkeys(self._due, 0)
        for table, step in (
            ("entries", self._entries),
            ("journal", self._journal),
            ("commands", self._commands),
            ("receipts", self._receipts),
        ):
            while halt is None or not halt.is_set():
                if self._now(table) < self._due[table]:
                    break
                with self._store.write(f"prune {table}") as conn:
                    deleted = step(conn)
                deleted_from[table] += deleted
                if deleted < self._config.prune_chunk:
                    break
        return deleted_from

    def _now(self, table: str) -> float:
        """Entries and receipts (stamped on the corrected clock): the earlier of the
        corrected and the device clock (see ``_entries``); the others: the device's."""
        if table in ("entries", "receipts"):
            return min(self._outbox.clock(), self._clock())
        return self._clock()

    def _entries(self, conn: Connection) -> int:
        """One chunk of acked entries past retention; the seq/HLC floor written first.

        ``updated_at`` is on the corrected clock, whose offset may be learnt only after
        the first acks (stamped with a wrong device clock): the cutoff is taken on the
        earlier of the two clocks, so a clock correction never prunes an entry early.
        """
        now = self._now("entries")
        cutoff = now - self._config.entry_retention
        rows = conn.execute(
            sa.select(entries_t.c.seq, entries_t.c.updated_at)
            .where(_ACKED)
            .order_by(entries_t.c.seq)
            .limit(self._config.prune_chunk)
        ).all()
        old = [r.seq for r in rows if r.updated_at <= cutoff]
        young = [r.updated_at for r in rows if r.updated_at > cutoff]
        if young and len(rows) < self._config.prune_chunk:
            self._due["entries"] = min(young) + self._config.entry_retention
        elif not rows:
            self._due["entries"] = now + self._config.entry_retention
        if not old:
            return 0
        recorder = self._outbox.recorder
        write_floor(conn, recorder.next_seq, recorder.last_hlc)  # under the store's lock
        conn.execute(entries_t.delete().where(entries_t.c.seq.in_(old)))
        return len(old)

    def _journal(self, conn: Connection) -> int:
        """One chunk of journal events acknowledged before the retention period."""
        return self._chunk(conn, "journal", journal_t.c.acked_at, journal_t.c.n)

    def _commands(self, conn: Connection) -> int:
        """One chunk of command outcomes reported before the retention period."""
        return self._chunk(conn, "commands", commands_t.c.reported_at, commands_t.c.command_id)

    def _receipts(self, conn: Connection) -> int:
        """One chunk of receipts past their retention (h9-box's ``prune_receipts``)."""
        now = self._now("receipts")
        deleted = prune_receipts(conn, now, limit=self._config.prune_chunk)
        if deleted < self._config.prune_chunk:
            oldest = conn.scalar(sa.select(sa.func.min(receipts_t.c.acked_at)))
            self._due["receipts"] = (oldest if oldest is not None else now) + RECEIPT_RETENTION
        return deleted

    def _chunk(
        self, conn: Connection, table: str, stamp: sa.Column[Any], key: sa.Column[Any]
    ) -> int:
        retention = self._config.journal_retention
        cutoff = self._clock() - retention
        keys = list(
            conn.scalars(
                sa.select(key)
                .where(stamp.is_not(None), stamp <= cutoff)
                .order_by(stamp)
                .limit(self._config.prune_chunk)
            )
        )
        if keys:
            conn.execute(key.table.delete().where(key.in_(keys)))
            return len(keys)
        oldest = conn.scalar(sa.select(sa.func.min(stamp)).where(stamp.is_not(None)))
        self._due[table] = (oldest if oldest is not None else self._clock()) + retention
        return 0

"""The outbox: the queue of a device's changes over its store, kept until the server answers.

Theory of operation
-------------------
Recording (_recording.py) appends rows to ``entries`` (one per change, its canonical
bytes stored once); this module moves them along the table in _states.py: every
move first checks each row is in the state it expects. Taking a batch
(_batches.py chooses and assembles it) moves its rows to in_flight and commits before
the network is touched; the ack is applied in one transaction; a failed send puts
the batch back to pending; on open, anything still in_flight (a crash mid-send) goes
back to pending. Nothing is ever deleted: acked rows stay as history. ``meta`` holds
the device id, why syncing last stopped, the learnt clock offset and, only where the
rows cannot say it, a floor for seq and HLC (_recording.py).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from protocol.codec import batch_overhead
from protocol.constants import MAX_ENTRIES_PER_BATCH
from protocol.model import Ack

from ._batches import OutgoingBatch, Row, assemble, fit, group
from ._config import OutboxConfig
from ._ids import seq_of
from ._recording import Recorder
from ._states import State, check
from ._store import Store
from ._tables import entries_t, ids_from
from .errors import IllegalTransition, UnknownEntry

#: ``state`` behind SQLite's unary plus, which keeps the planner off the (state, seq)
#: index: moving a batch must find its rows by seq, not walk every row in a state
#: (that made taking each batch of a 100 k outbox read all 100 k).
_unindexed_state = sa.literal_column("+state", sa.String)

_PENDING = entries_t.c.state == State.PENDING.value
_HEADS = sa.select(entries_t.c.seq, entries_t.c.tx_id, entries_t.c.size).order_by(entries_t.c.seq)
_ROWS = sa.select(
    entries_t.c.seq, entries_t.c.op_id, entries_t.c.tx_id, entries_t.c.size, entries_t.c.body
)
#: A transaction's rows are consecutive seqs, at most this many from its first.
_TX_SPAN = MAX_ENTRIES_PER_BATCH - 1


#: An entry as moves name it: (seq, op_id).
Key = tuple[int, str]


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying one ack did, by entry."""

    applied: int = 0
    duplicate: int = 0
    conflict: int = 0
    parked: int = 0


class Outbox:
    """The encrypted, append-only outbox of one device; thread-safe."""

    def __init__(
        self,
        path: str | Path,
        key: bytes | str,
        *,
        device_id: str | None,
        clock: Callable[[], float],
        config: OutboxConfig | None = None,
        recover: bool = True,
    ) -> None:
        self.config = config or OutboxConfig()
        self.clock = clock
        self.store = Store(
            path,
            key,
            device_id=device_id,
            busy_timeout_ms=self.config.busy_timeout_ms,
            wal_autocheckpoint=self.config.wal_autocheckpoint,
            prepare=self._recover if recover else None,
        )
        self.path = self.store.path
        self.device_id = self.store.device_id
        try:
            self.recorder = Recorder(self.store, self.config, clock)
        except BaseException:
            self.store.close()
            raise
        self._overhead = batch_overhead(
            self.config.protocol_version, "00000000-0000-7000-8000-000000000000", self.device_id
        )

    def close(self) -> None:
        """Close the store; the file stays as the last commit left it."""
        self.store.close()

    def take_batch(self, *, metered: bool, skip: Collection[str] = ()) -> OutgoingBatch | None:
        """Move the oldest whole pending transactions that fit into in_flight; None if none.

        Transactions in ``skip`` (set aside by the sync loop) are left where they are.
        """
        limit = self.config.max_metered_entries if metered else self.config.max_entries
        window = self.config.max_entries + 1
        pending = _PENDING if not skip else sa.and_(_PENDING, entries_t.c.tx_id.not_in(list(skip)))
        with self.store.write("take a batch") as conn:
            heads = conn.execute(_HEADS.where(pending).limit(window)).all()
            if not heads:
                return None
            groups = group(heads)
            if len(heads) == window and len(groups) == 1:
                # One transaction wider than the window: it goes alone, whole.
                first = groups[0][0]
                where = sa.and_(
                    entries_t.c.seq.between(first.seq, first.seq + _TX_SPAN),
                    entries_t.c.tx_id == first.tx_id,
                )
            else:
                if len(heads) == window:
                    groups = groups[:-1]  # the last group may be cut by the window
                chosen = self._fit(groups, limit)
                where = entries_t.c.seq.between(chosen[0].seq, chosen[-1].seq)
            rows = conn.execute(_ROWS.where(where, pending).order_by(entries_t.c.seq)).all()
            self._launch(conn, rows)
        return self._assemble(rows)

    def take_transactions(self, tx_ids: Sequence[str], *, metered: bool) -> OutgoingBatch | None:
        """Move the pending entries of these transactions (those that fit, oldest first)
        into in_flight as one batch; None if none of them is pending."""
        limit = self.config.max_metered_entries if metered else self.config.max_entries
        with self.store.write("take a batch") as conn:
            rows = _pending_rows_of(conn, tx_ids)
            if not rows:
                return None
            chosen = {r.tx_id for r in self._fit(group(rows), limit)}
            rows = [r for r in rows if r.tx_id in chosen]
            self._launch(conn, rows)
        return self._assemble(rows)

    def release(self, batch: OutgoingBatch) -> None:
        """Put a batch that did not get an ack back to pending."""
        with self.store.write("release a batch") as conn:
            self.move(conn, batch.keys(), State.IN_FLIGHT, State.PENDING)

    def park(self, batch: OutgoingBatch, code: str, message: str) -> None:
        """Park an in-flight batch with the client's own verdict (the server never gave one)."""
        with self.store.write("park a batch") as conn:
            self.move(
                conn,
                batch.keys(),
                State.IN_FLIGHT,
                State.PARKED,
                status=None,
                code=code,
                field=None,
                message=message,
            )

    def apply(self, batch: OutgoingBatch, ack: Ack) -> Applied:
        """Record the server's verdicts in one transaction: acked or parked with the reason."""
        counts = {"applied": 0, "duplicate": 0, "conflict": 0, "parked": 0}
        # Entries with the same verdict move together: one statement per verdict, not
        # per entry (a batch is mostly "applied" with nothing else to say).
        moves: dict[tuple[State, str, str | None, str | None, str | None], list[Key]] = {}
        for key, result in zip(batch.keys(), ack.results, strict=True):
            outcome = result.outcome
            dst = State.PARKED if outcome.status == "rejected" else State.ACKED
            verdict = (dst, result.status, outcome.code, outcome.field, outcome.message)
            moves.setdefault(verdict, []).append(key)
            counts["parked" if dst is State.PARKED else result.status] += 1
        with self.store.write("apply an ack") as conn:
            for (dst, status, code, field_, message), keys in moves.items():
                self.move(
                    conn,
                    keys,
                    State.IN_FLIGHT,
                    dst,
                    status=status,
                    code=code,
                    field=field_,
                    message=message,
                )
        return Applied(**counts)

    def move(
        self,
        conn: Connection,
        keys: Sequence[Key],
        src: State,
        dst: State,
        **values: Any,
    ) -> None:
        """Move every (seq, op_id) from ``src`` to ``dst`` or raise (rolling back the
        transaction). Rows are found by seq (the primary key); op_ids name them in errors."""
        check(src, dst)
        if not keys:
            return
        seqs = [seq for seq, _ in keys]
        moved = conn.execute(
            entries_t.update()
            .where(entries_t.c.seq.in_(seqs), _unindexed_state == src.value)
            .values(state=dst.value, updated_at=self.clock(), **values)
            .returning(entries_t.c.seq)
        ).scalars()
        left = set(seqs).difference(moved)
        if not left:
            return
        # Rows not moved are missing or in another state: say which (raising rolls
        # the whole transaction back, the rows moved above included).
        found = dict(
            conn.execute(
                sa.select(entries_t.c.seq, entries_t.c.state).where(entries_t.c.seq.in_(left))
            ).all()
        )
        for seq, op_id in keys:
            if seq not in left:
                continue
            if seq not in found:
                raise UnknownEntry(op_id, path=self.path)
            raise IllegalTransition(found[seq], dst.value, op_id=op_id)

    def _launch(self, conn: Connection, rows: Sequence[Row]) -> None:
        """Move ``rows`` to in_flight."""
        self.move(
            conn,
            [(r.seq, r.op_id) for r in rows],
            State.PENDING,
            State.IN_FLIGHT,
            attempts=entries_t.c.attempts + 1,
        )

    def _assemble(self, rows: Sequence[Row]) -> OutgoingBatch:
        """The batch of rows just moved in flight (after the commit: outside the lock)."""
        return assemble(self.config.protocol_version, self.device_id, rows)

    def _fit(self, groups: list[list[Row]], limit: int) -> list[Row]:
        return fit(groups, limit, self._overhead, self.config.max_batch_bytes)

    def _recover(self, conn: Connection) -> None:
        check(State.IN_FLIGHT, State.PENDING)
        conn.execute(
            entries_t.update()
            .where(entries_t.c.state == State.IN_FLIGHT.value)
            .values(state=State.PENDING.value, updated_at=self.clock())
        )


def _pending_rows_of(conn: Connection, tx_ids: Sequence[str]) -> list[Row]:
    """The pending rows of these transactions, by seq: each id carries its first seq
    (_ids.py); transactions from before layout 4 are searched among the old rows."""
    rows: list[Row] = []
    old_end = ids_from(conn)
    for tx_id in tx_ids:
        first = seq_of(tx_id)
        if first is not None and first >= old_end:
            rows += conn.execute(
                _ROWS.where(
                    entries_t.c.seq.between(first, first + _TX_SPAN),
                    entries_t.c.tx_id == tx_id,
                    _PENDING,
                )
            ).all()
    if old_end > 1:
        rows += conn.execute(
            _ROWS.where(_PENDING, entries_t.c.seq < old_end, entries_t.c.tx_id.in_(list(tx_ids)))
        ).all()
    return sorted(rows, key=lambda r: r.seq)

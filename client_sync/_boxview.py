"""The data box as an app reads it: entries not yet acknowledged, counts, receipts.

Every query here starts from the ``(state, seq)`` index (one range per state), so
its cost follows the entries still waiting, not the outbox's history; acknowledged
entries are read only through their receipt. ``collection`` and ``record_id`` are
layout 4's virtual columns (read out of the body, never stored): the per-record
questions cost a JSON read per waiting entry and nothing per ``record()``.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from protocol.codec import decode_entry, decode_result
from protocol.model import Result
from protocol.reasons import reason_of

from ._messages import message
from ._reads import Row, row_of
from ._states import State
from ._store import Store
from ._tables import entries_t, receipts_t
from .errors import UnknownEntry

#: How long a receipt is kept after the server's answer (seconds): longer than an
#: acknowledged entry's own retention, so the tick outlives the entry's body.
RECEIPT_RETENTION = 30 * 24 * 3600.0

#: The states of an entry not yet acknowledged, in the order the data box lists them.
WAITING: tuple[State, ...] = (State.PENDING, State.IN_FLIGHT, State.PARKED)

Stage = Literal["queued", "sent", "applied", "duplicate", "conflict", "rejected"]


@dataclass(frozen=True, slots=True)
class DataBoxEntry:
    """One entry not yet acknowledged, with why it waits, in the app's language.

    ``code`` is a ``protocol.reasons.Reason`` value (the verdict's, for a parked
    entry; the last failed attempt's, for a pending one; None if nothing failed),
    ``server_code`` the server's own finer code, ``field`` the field it is about,
    ``message`` the localised words, ``detail`` the server's (or the error's) own.
    ``next_retry_at`` (wall clock) is when the sync loop tries again after failures;
    None when it is not waiting (or for a parked entry, which waits for the rep).
    """

    op_id: str
    seq: int
    tx_id: str
    collection: str
    record_id: str
    kind: str
    fields: dict[str, Any]
    state: State
    attempts: int
    code: str | None
    server_code: str | None
    field: str | None
    message: str | None
    detail: str | None
    channel: str | None
    sent_at: float | None
    queued_at: float
    next_retry_at: float | None
    resubmit_of: str | None


@dataclass(frozen=True, slots=True)
class DataBoxCounts:
    """Entries not yet acknowledged by state; parked ones by reason; pending ones by the
    reason of their last failed attempt."""

    states: dict[str, int]
    reasons: dict[str, int]
    failing: dict[str, int]

    @property
    def total(self) -> int:
        """Every entry not yet acknowledged (the "unsynced changes" badge)."""
        return sum(self.states.values())


@dataclass(frozen=True, slots=True)
class Receipt:
    """Where one entry is on its way: queued -> sent (when, on which channel) -> answered.

    ``stage`` is the latest step; ``result`` the server's stored result once answered
    (a duplicate carries the original's as ``result.original``); ``state`` the entry's
    outbox state, None once the entry was pruned (the receipt outlives it).
    """

    op_id: str
    seq: int
    collection: str
    record_id: str
    stage: Stage
    queued_at: float
    sent_at: float | None
    channel: str | None
    attempts: int
    acked_at: float | None
    result: Result | None
    state: State | None


class BoxView:
    """Read-only data-box views over a store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def entries(
        self,
        *,
        locale: str | None,
        state: State | str | None = None,
        after_seq: int = 0,
        limit: int = 1000,
        next_retry_at: float | None = None,
    ) -> list[DataBoxEntry]:
        """Up to ``limit`` waiting entries with seq > ``after_seq``, oldest first."""
        states = WAITING if state is None else (_waiting(state),)
        with self._store.read("read the data box") as conn:
            runs = [
                conn.execute(
                    sa.select(entries_t)
                    .where(entries_t.c.state == s.value, entries_t.c.seq > after_seq)
                    .order_by(entries_t.c.seq)
                    .limit(limit)
                ).all()
                for s in states
            ]
        rows = list(heapq.merge(*runs, key=lambda r: r.seq))[:limit]
        return [_entry(r, locale, next_retry_at) for r in rows]

    def counts(self) -> DataBoxCounts:
        """Waiting entries by state, parked ones by reason, failing ones by reason."""
        states = dict.fromkeys((s.value for s in WAITING), 0)
        reasons: Counter[str] = Counter()
        failing: Counter[str] = Counter()
        c = entries_t.c
        with self._store.read("count the data box") as conn:
            for s in WAITING:
                states[s.value] = conn.execute(
                    sa.select(sa.func.count()).where(c.state == s.value)
                ).scalar_one()
            for code, n in conn.execute(
                sa.select(c.code, sa.func.count())
                .where(c.state == State.PARKED.value)
                .group_by(c.code)
            ):
                reasons[reason_of(code).value] += n
            for s in (State.PENDING, State.IN_FLIGHT):
                for failure, n in conn.execute(
                    sa.select(c.failure, sa.func.count())
                    .where(c.state == s.value, c.failure.is_not(None))
                    .group_by(c.failure)
                ):
                    failing[reason_of(failure).value] += n
        return DataBoxCounts(states, dict(reasons), dict(failing))

    def waiting(self) -> int:
        """How many entries are not yet acknowledged (one index range per state)."""
        c = entries_t.c
        with self._store.read("count waiting entries") as conn:
            return sum(
                conn.execute(sa.select(sa.func.count()).where(c.state == s.value)).scalar_one()
                for s in WAITING
            )

    def unsynced(self, collection: str, record_id: str | None = None) -> dict[str, int]:
        """Waiting entries per record of ``collection`` (only ``record_id``'s if given)."""
        c = entries_t.c
        found: Counter[str] = Counter()
        with self._store.read("read unsynced records") as conn:
            for s in WAITING:
                query = sa.select(c.record_id, sa.func.count()).where(
                    c.state == s.value, c.collection == collection
                )
                if record_id is not None:
                    query = query.where(c.record_id == record_id)
                for rid, n in conn.execute(query.group_by(c.record_id)):
                    found[rid] += n
        return dict(found)

    def receipt(self, op_id: str) -> Receipt:
        """The receipt of ``op_id``: from the receipts table once answered, else its row."""
        with self._store.read("read a receipt") as conn:
            row = _row_or_none(conn, op_id, self._store.path)
            answered = conn.execute(
                sa.select(receipts_t).where(receipts_t.c.op_id == op_id)
            ).first()
        state = State(row.state) if row is not None else None
        if answered is not None:
            return _answered(answered, state)
        if row is None:
            raise UnknownEntry(op_id, path=self._store.path)
        return _from_row(row, state)


def _row_or_none(conn: Connection, op_id: str, path: str) -> Row | None:
    """The entry row of ``op_id`` found by the seq its id carries (``row_of``); None if
    it is gone (pruned) or never was."""
    try:
        return row_of(conn, op_id, path)
    except UnknownEntry:
        return None


def _waiting(state: State | str) -> State:
    found = State(state)
    if found not in WAITING:
        raise ValueError(f"the data box holds {', '.join(WAITING)}; not {found}")
    return found


def _entry(row: Row, locale: str | None, next_retry_at: float | None) -> DataBoxEntry:
    """A waiting row as the data box shows it."""
    entry = decode_entry(row.body)
    state = State(row.state)
    parked = state is State.PARKED
    raw = row.code if parked else row.failure
    code = reason_of(raw).value if raw is not None else None
    field = row.field if parked else None
    return DataBoxEntry(
        op_id=row.op_id,
        seq=row.seq,
        tx_id=row.tx_id,
        collection=entry.collection,
        record_id=entry.record_id,
        kind=entry.kind,
        fields=entry.fields,
        state=state,
        attempts=row.attempts,
        code=code,
        server_code=raw,
        field=field,
        message=message(code, locale, field=field, server_code=raw) if code else None,
        detail=row.message if parked else row.failure_detail,
        channel=row.channel,
        sent_at=row.sent_at,
        queued_at=row.created_at,
        next_retry_at=next_retry_at if state is State.PENDING else None,
        resubmit_of=row.resubmit_of,
    )


def _from_row(row: Row, state: State | None) -> Receipt:
    """A receipt from the entry's own row: not answered yet, or answered before layout 4
    (or its receipt pruned): then the row's verdict columns say the answer."""
    stage: Stage = "sent" if row.sent_at is not None else "queued"
    result = None
    if row.status in ("applied", "duplicate", "conflict", "rejected"):
        stage = row.status
        result = Result(row.op_id, row.status, row.code, row.field, row.message)
    return Receipt(
        op_id=row.op_id,
        seq=row.seq,
        collection=row.collection,
        record_id=row.record_id,
        stage=stage,
        queued_at=row.created_at,
        sent_at=row.sent_at,
        channel=row.channel,
        attempts=row.attempts,
        acked_at=row.updated_at if result is not None else None,
        result=result,
        state=state,
    )


def _answered(row: Row, state: State | None) -> Receipt:
    result = decode_result(row.result)
    return Receipt(
        op_id=row.op_id,
        seq=row.seq,
        collection=row.collection,
        record_id=row.record_id,
        stage=row.status,
        queued_at=row.queued_at,
        sent_at=row.sent_at,
        channel=row.channel or None,
        attempts=row.attempts,
        acked_at=row.acked_at,
        result=result,
        state=state,
    )


def prune_receipts(
    conn: sa.Connection,
    now: float,
    retention: float = RECEIPT_RETENTION,
    limit: int | None = None,
) -> int:
    """Delete receipts answered more than ``retention`` seconds before ``now`` (the
    oldest ``limit`` of them, if given); how many."""
    old = receipts_t.c.acked_at < now - retention
    if limit is not None:
        oldest = sa.select(receipts_t.c.op_id).where(old).order_by(receipts_t.c.acked_at)
        old = receipts_t.c.op_id.in_(oldest.limit(limit).scalar_subquery())
    done = conn.execute(receipts_t.delete().where(old))
    return int(done.rowcount)

"""Reading the outbox as the app sees it: entries (decoded from their bytes), counts, audit."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from protocol.codec import decode_entry

from ._ids import seq_of
from ._states import State
from ._store import Store
from ._tables import audit_t, entries_t, ids_from
from .errors import UnknownEntry

#: A result row (SQLAlchemy's Row generics differ between 2.0 and 2.1).
Row = Any


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One outbox row as the app sees it; ``code/field/message`` are the server's verdict."""

    op_id: str
    seq: int
    tx_id: str
    hlc: str
    collection: str
    record_id: str
    kind: str
    fields: dict[str, Any]
    schema_version: int
    state: State
    attempts: int
    status: str | None
    code: str | None
    field: str | None
    message: str | None
    replaced_by: str | None
    created_at: float
    updated_at: float


class Reads:
    """Read-only views of the outbox over its store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def entry(self, op_id: str) -> OutboxEntry:
        """The entry with this op_id, in whatever state."""
        with self._store.read("read") as conn:
            return view(row_of(conn, op_id, self._store.path))

    def entries(
        self, *, state: State | str | None = None, after_seq: int = 0, limit: int = 1000
    ) -> list[OutboxEntry]:
        """Up to ``limit`` entries with seq > ``after_seq``, oldest first (page through)."""
        query = sa.select(entries_t).where(entries_t.c.seq > after_seq)
        if state is not None:
            query = query.where(entries_t.c.state == State(state).value)
        with self._store.read("read") as conn:
            rows = conn.execute(query.order_by(entries_t.c.seq).limit(limit)).all()
            return [view(r) for r in rows]

    def parked(self) -> list[OutboxEntry]:
        """Every parked entry, oldest first, with the server's code/field/message."""
        found: list[OutboxEntry] = []
        after = 0
        while page := self.entries(state=State.PARKED, after_seq=after):
            found.extend(page)
            after = page[-1].seq
        return found

    def stats(self) -> dict[str, int]:
        """Entry counts by state, every state present."""
        counts = dict.fromkeys((s.value for s in State), 0)
        with self._store.read("read") as conn:
            for state, n in conn.execute(
                sa.select(entries_t.c.state, sa.func.count()).group_by(entries_t.c.state)
            ):
                counts[state] = n
        return counts

    def audit_log(self) -> list[dict[str, Any]]:
        """Every discard and resubmit, oldest first."""
        with self._store.read("read") as conn:
            rows = conn.execute(sa.select(audit_t).order_by(audit_t.c.id)).all()
        return [{**r._asdict(), "detail": json.loads(r.detail)} for r in rows]


def row_of(conn: Any, op_id: str, path: str) -> Row:
    """The full row of ``op_id`` or UnknownEntry: by the seq the id carries (_ids.py),
    else among the rows from before layout 4, whose ids carry none."""
    seq = seq_of(op_id)
    old_end = ids_from(conn)
    if seq is not None and seq >= old_end:
        row = conn.execute(sa.select(entries_t).where(entries_t.c.seq == seq)).first()
        if row is not None and row.op_id == op_id:
            return row
    if old_end > 1:
        row = conn.execute(
            sa.select(entries_t).where(entries_t.c.seq < old_end, entries_t.c.op_id == op_id)
        ).first()
        if row is not None:
            return row
    raise UnknownEntry(op_id, path=path)


def view(row: Row) -> OutboxEntry:
    """An app's view of a row: the entry decoded from its stored bytes, and its state."""
    entry = decode_entry(row.body)
    return OutboxEntry(
        op_id=row.op_id,
        seq=row.seq,
        tx_id=row.tx_id,
        hlc=entry.hlc,
        collection=entry.collection,
        record_id=entry.record_id,
        kind=entry.kind,
        fields=entry.fields,
        schema_version=entry.schema_version,
        state=State(row.state),
        attempts=row.attempts,
        status=row.status,
        code=row.code,
        field=row.field,
        message=row.message,
        replaced_by=row.replaced_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )

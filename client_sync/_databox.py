"""The offline data box: parked entries resubmitted (fixed) or discarded, both audited."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from protocol.codec import canonical_json

from ._outbox import Outbox
from ._reads import OutboxEntry, Reads, Row, row_of, view
from ._states import State, check
from ._tables import audit_t, entries_t


class DataBox:
    """Resubmit or discard parked entries of an outbox."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.reads = Reads(outbox.store)

    def resubmit(
        self, op_id: str, fields: Mapping[str, Any], schema_version: int, reason: str
    ) -> str:
        """Record a parked entry again with fixed ``fields``, with its parked siblings.

        The parked entries of the same original transaction go back together, as one
        new transaction, so the transaction stays all-or-nothing on the server.
        Returns the new op_id of ``op_id``'s replacement.
        """
        outbox = self.outbox
        recorder = outbox.recorder
        with recorder.transaction(sql=True) as tx:
            conn = tx.conn
            assert conn is not None  # sql=True
            target = row_of(conn, op_id, outbox.path)
            check(target.state, State.RESUBMITTED, op_id=op_id)
            group = conn.execute(
                sa.select(entries_t)
                .where(entries_t.c.tx_id == target.tx_id, entries_t.c.state == State.PARKED.value)
                .order_by(entries_t.c.seq)
            ).all()
            new_id = ""
            for row in group:
                old = view(row)
                mine = row.op_id == op_id
                new = recorder.append(
                    tx,
                    collection=old.collection,
                    record_id=old.record_id,
                    kind=old.kind,  # type: ignore[arg-type]
                    fields=dict(fields) if mine else old.fields,
                    schema_version=schema_version if mine else old.schema_version,
                )
                new_id = new if mine else new_id
                outbox.move(
                    conn, [(row.seq, row.op_id)], State.PARKED, State.RESUBMITTED, replaced_by=new
                )
                self._audit(conn, "resubmit", row, old, reason=reason, replaced_by=new)
            return new_id

    def discard(self, op_id: str, reason: str) -> None:
        """Give up a parked entry; an audit row keeps what it was and why it went."""
        if not reason.strip():
            raise ValueError("a discard needs a reason (it is audited)")
        outbox = self.outbox
        with outbox.store.write("discard") as conn:
            row = row_of(conn, op_id, outbox.path)
            outbox.move(conn, [(row.seq, op_id)], State.PARKED, State.DISCARDED)
            self._audit(conn, "discard", row, view(row), reason=reason)

    def _audit(
        self,
        conn: Connection,
        action: str,
        row: Row,
        old: OutboxEntry,
        *,
        reason: str,
        replaced_by: str | None = None,
    ) -> None:
        detail = {
            "seq": old.seq,
            "tx_id": old.tx_id,
            "collection": old.collection,
            "record_id": old.record_id,
            "kind": old.kind,
            "fields": old.fields,
            "verdict": {"code": row.code, "field": row.field, "message": row.message},
            "replaced_by": replaced_by,
        }
        conn.execute(
            audit_t.insert().values(
                at=self.outbox.clock(),
                action=action,
                op_id=row.op_id,
                reason=reason,
                detail=canonical_json(detail).decode(),
            )
        )

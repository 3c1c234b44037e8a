"""The offline data box: parked entries resubmitted (fixed) or discarded, both audited."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from protocol.codec import canonical_json

from ._ids import seq_of
from ._outbox import Outbox
from ._reads import OutboxEntry, Reads, Row, row_of, view
from ._states import State, check
from ._tables import audit_t, entries_t


class DataBox:
    """Resubmit or discard parked entries of an outbox."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.reads = Reads(outbox.store)
        #: Called in each resubmit/discard transaction: (conn, action, op_id, reason,
        #: new_op_id); the journal's hook (_commands.py).
        self.on_action: Callable[[Connection, str, str, str, str | None], None] | None = None

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
            links: list[tuple[str, str]] = []
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
                links.append((new, row.op_id))
                outbox.move(
                    conn, [(row.seq, row.op_id)], State.PARKED, State.RESUBMITTED, replaced_by=new
                )
                self._audit(conn, "resubmit", row, old, reason=reason, replaced_by=new)
            tx.after_insert.append(lambda: _link(conn, links))
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
        """Keep the audit row of a resubmit or discard, in its transaction.

        ``on_action`` (the journal's hook, _commands.py) runs here, in the same
        transaction, so that nothing disappears unseen and a command's outcome
        commits with the change.
        """
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
        if self.on_action is not None:
            self.on_action(conn, action, row.op_id, reason, replaced_by)


def _link(conn: Connection, links: list[tuple[str, str]]) -> None:
    """Point each new entry at the parked original it replaces (``resubmit_of``): by the
    seq its new id carries (_ids.py), the primary key."""
    for new, original in links:
        conn.execute(
            entries_t.update()
            .where(entries_t.c.seq == seq_of(new), entries_t.c.op_id == new)
            .values(resubmit_of=original)
        )

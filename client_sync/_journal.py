"""The device journal: what happened to the device's links and syncs, in its encrypted store.

Theory of operation
-------------------
Each event is one row of ``journal`` (_tables.py) written in its own short write
transaction, or in the caller's when the event belongs to a change (a data-box
action is journaled in the transaction that makes it). An event has its own id (a
UUIDv7, unique per device: the server stores a replay once, as it does an op_id),
``at_ms`` from the device's own wall clock (the clock given to SyncClient, not the
server-corrected one: the server corrects skew itself), a ``kind`` and the kind's
members (``fields``, canonical JSON). Kinds, as protocol 2.1 carries them:

- ``link``: a channel went up or down. From sync outcomes (a send that reached the
  server: up; a LinkFailure: down), and from the app's hook when the OS reports a
  change (``SyncClient.network_changed``). Only transitions are journaled: the last
  known state of each channel is kept in meta (``links``) in the same transaction.
- ``attempt``: one send of a batch (_reporting.py).
- ``status``: queue depth, free storage, app and protocol version (with a report).
- ``refused``: a record refused for want of storage (``note_refused``).
- ``databox``: a parked entry discarded or resubmitted (``note_databox``).

Text that goes on the wire is made valid here, at the moment it is journaled (ids
and names: no control character or lone surrogate, at most 64 characters), so an
event the server would refuse can never be stored, and so never wedge the upload.
Events stay unacknowledged (``acked_at`` NULL) until the ack of a batch whose
report carried them arrives; pruning (_pruning.py) removes acknowledged ones after
the retention period.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from uuid6 import uuid7

from protocol.codec import canonical_json
from protocol.constants import MAX_ID_LENGTH
from protocol.model import (
    AttemptEvent,
    DataboxEvent,
    Event,
    LinkEvent,
    RefusedEvent,
    StatusEvent,
)

from ._store import Store, meta_value, put_meta
from ._tables import journal_t

#: The wire's value class of each kind of event.
_KINDS: dict[str, type[Event]] = {
    "link": LinkEvent,
    "attempt": AttemptEvent,
    "status": StatusEvent,
    "refused": RefusedEvent,
    "databox": DataboxEvent,
}

#: meta key: {"<channel>": true|false}, each channel's last known state.
LINKS_KEY = "links"

#: Characters that may not stand in an id or a name on the wire (control characters
#: and lone surrogates, as protocol._text refuses them); replaced, never refused.
_NOT_NAME = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
#: Characters that may not stand in a message (NUL and lone surrogates).
_UNSAFE = re.compile("[\x00\ud800-\udfff]")

#: Unacknowledged events that make a report worth a batch of its own: every kind but
#: ``attempt``. Attempts ride with the next report (the next sync's first batch, or the
#: one ``report_every`` sends): were they news, each report-only batch's own attempt
#: would call for the next, and each data sync for one more request (rate limits).
_URGENT = sa.and_(journal_t.c.acked_at.is_(None), journal_t.c.kind != "attempt")


def name_text(value: str, most: int = MAX_ID_LENGTH) -> str:
    """``value`` fit for an id or name on the wire: cleaned, cut to ``most``, never empty."""
    return _NOT_NAME.sub("\ufffd", value[:most]) or "-"


def message_text(value: str, most: int) -> str:
    """``value`` fit for a message on the wire: no NUL or lone surrogate, at most ``most``."""
    return _UNSAFE.sub("\ufffd", value[:most])


class Journal:
    """The journal table of one store; thread-safe (the store's lock)."""

    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock
        with store.read("read the links") as conn:
            stored = meta_value(conn, LINKS_KEY)
        self._links: dict[str, bool] = json.loads(stored) if stored else {}

    def now_ms(self) -> int:
        """The device's wall clock, in ms since the epoch."""
        return int(self._clock() * 1000)

    # -- writing events ----------------------------------------------------------------

    def note(self, kind: str, fields: dict[str, Any], conn: Connection | None = None) -> str:
        """Journal one event (in ``conn``'s transaction, if given); return its id."""
        event_id = str(uuid7())
        row = {
            "id": event_id,
            "at_ms": self.now_ms(),
            "kind": kind,
            "fields": canonical_json(fields).decode(),
        }
        with self._within(conn, f"journal a {kind} event") as tx:
            tx.execute(journal_t.insert().values(row))
        return event_id

    def link(self, channel: str, up: bool, source: str, conn: Connection | None = None) -> bool:
        """Journal a channel going up or down, if that changes its known state."""
        name = name_text(channel)
        with self._within(conn, "journal a link") as tx:
            if self._links.get(name) is up:
                return False
            self._links[name] = up
            put_meta(tx, LINKS_KEY, json.dumps(self._links, sort_keys=True))
            self.note("link", {"channel": name, "up": up, "source": source}, tx)
        return True

    def link_state(self, channel: str) -> bool | None:
        """The last known state of ``channel`` (None: never seen)."""
        with self._store.lock:
            return self._links.get(name_text(channel))

    def note_refused(self, free_bytes: int, conn: Connection | None = None) -> str:
        """Journal a record refused because free storage is under the floor."""
        return self.note("refused", {"code": "storage_low", "free_bytes": max(free_bytes, 0)}, conn)

    def note_databox(
        self,
        action: str,
        op_id: str,
        reason: str,
        *,
        new_op_id: str | None = None,
        command_id: str | None = None,
        conn: Connection | None = None,
    ) -> str:
        """Journal a data-box action (``discard``/``resubmit``), and the command behind it."""
        fields: dict[str, Any] = {
            "action": action,
            "op_id": op_id,
            "reason": name_text(reason.strip()),
        }
        if new_op_id is not None:
            fields["new_op_id"] = new_op_id
        if command_id is not None:
            fields["command_id"] = command_id
        return self.note("databox", fields, conn)

    def on_action(
        self, conn: Connection, action: str, op_id: str, reason: str, new_op_id: str | None
    ) -> None:
        """The data box's hook (``DataBox.on_action``): journal the action in its transaction."""
        self.note_databox(action, op_id, reason, new_op_id=new_op_id, conn=conn)

    # -- reading and acknowledging -------------------------------------------------------

    def unsent(self, limit: int) -> list[Event]:
        """Up to ``limit`` unacknowledged events, oldest first, as the wire carries them."""
        query = (
            sa.select(journal_t.c.id, journal_t.c.at_ms, journal_t.c.kind, journal_t.c.fields)
            .where(journal_t.c.acked_at.is_(None))
            .order_by(journal_t.c.n)
            .limit(limit)
        )
        with self._store.read("read the journal") as conn:
            rows = conn.execute(query).all()
        return [_wire(r) for r in rows]

    def urgent(self) -> bool:
        """Whether an unacknowledged event calls for a report-only batch."""
        with self._store.read("read the journal") as conn:
            return (
                conn.execute(sa.select(sa.literal(1)).where(_URGENT).limit(1)).first() is not None
            )

    def acknowledge(self, ids: Sequence[str], conn: Connection | None = None) -> None:
        """Mark events acknowledged (the ack of the batch that carried them arrived)."""
        if not ids:
            return
        with self._within(conn, "acknowledge journal events") as tx:
            tx.execute(
                journal_t.update()
                .where(journal_t.c.id.in_(list(ids)), journal_t.c.acked_at.is_(None))
                .values(acked_at=self._clock())
            )

    def events(self, *, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        """A page of the journal (acknowledged or not) with ``n`` > ``after``, oldest first."""
        query = sa.select(journal_t).where(journal_t.c.n > after).order_by(journal_t.c.n)
        with self._store.read("read the journal") as conn:
            rows = conn.execute(query.limit(limit)).all()
        return [_event(r) for r in rows]

    @contextmanager
    def _within(self, conn: Connection | None, what: str) -> Iterator[Connection]:
        """The caller's transaction, or a new write transaction."""
        if conn is not None:
            yield conn
            return
        with self._store.write(what) as tx:
            yield tx


def _wire(row: Any) -> Event:
    """A stored event as the wire carries it."""
    return _KINDS[row.kind](id=row.id, at_ms=row.at_ms, **json.loads(row.fields))


def _event(row: Any) -> dict[str, Any]:
    """A stored event as an app sees it: wire members plus ``n`` and ``acked_at``."""
    return {
        "n": row.n,
        "id": row.id,
        "at_ms": row.at_ms,
        "kind": row.kind,
        **json.loads(row.fields),
        "acked_at": row.acked_at,
    }

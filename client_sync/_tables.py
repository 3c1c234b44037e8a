"""The device store's tables, its layout version, and the upgrades from older layouts.

Layout 4 (this release) is layout 3 with one index on ``entries`` instead of three:
``(state, seq)``. Ids carry the seq of their row (_ids.py), so rows are found by
op_id or tx_id through the primary key and neither id has an index; each one was
another encrypted page written by every commit (docs/performance.md). Rows from
before the upgrade keep their random ids: meta ``IDS_FROM`` is the first seq whose
ids carry it, and the older rows are searched by id among themselves.

Layout 3 keeps each entry's canonical bytes (``body``, exactly as they
stand inside a batch: ``protocol.codec.encode_entry``) as the one home of the entry;
the other columns are what the queue selects and moves rows by, and the server's
verdict. Layout 2 held the entry as columns (``fields`` as JSON text, ``hlc``,
``kind``...) and wrote ``next_seq``/``last_hlc`` to ``meta`` on every commit; the
upgrade computes every row's bytes from those columns, as that release encoded them
for a batch, and keeps only a floor in meta where the rows cannot say the value.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from protocol.codec import encode_entry
from protocol.model import Entry

#: Layout version of the file (``pragma user_version``).
LAYOUT = 4

#: Tables every outbox layout has; a keyed database without them is not an outbox.
CORE_TABLES = frozenset({"entries", "meta"})

#: meta key: "<seq> <hlc>", the next seq and last HLC at a moment the rows cannot
#: show them (rows pruned, or the HLC pulled back by clock recovery); see _recording.py.
FLOOR_KEY = "floor"

#: meta key: the first seq whose op_id and tx_id carry their seq (_ids.py); rows
#: before it came from layouts 1-3. Absent: every row's ids do (a layout-4 store).
IDS_FROM = "ids_from"

metadata = sa.MetaData()

entries_t = sa.Table(
    "entries",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("op_id", sa.String, nullable=False),
    sa.Column("tx_id", sa.String, nullable=False),
    sa.Column("state", sa.String, nullable=False),
    #: len(body): what the entry adds to a batch, known without reading the body.
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("status", sa.String),
    sa.Column("code", sa.String),
    sa.Column("field", sa.String),
    sa.Column("message", sa.Text),
    sa.Column("replaced_by", sa.String),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("entries_state_seq", "state", "seq"),
)

meta_t = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

audit_t = sa.Table(
    "audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("action", sa.String, nullable=False),
    sa.Column("op_id", sa.String, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
)

#: The columns of a new row, in the order the record path binds them.
INSERT_COLUMNS = ("seq", "op_id", "tx_id", "state", "size", "body", "attempts")
INSERT_SQL = (
    f"INSERT INTO entries ({', '.join(INSERT_COLUMNS)}, created_at, updated_at)"
    f" VALUES ({', '.join('?' * len(INSERT_COLUMNS))}, ?, ?)"
)

#: Rows per statement while upgrading (bounded memory on a 100 k outbox).
_CHUNK = 1_000


def ids_from(conn: Connection) -> int:
    """The first seq whose ids carry it (1 unless the store came from layout 1-3)."""
    value = conn.execute(sa.select(meta_t.c.value).where(meta_t.c.key == IDS_FROM)).scalar()
    return int(value) if value is not None else 1


def create(conn: Connection) -> None:
    """Create every table of the current layout."""
    metadata.create_all(conn)
    conn.exec_driver_sql(f"pragma user_version = {LAYOUT}")


def upgrade(conn: Connection, version: int) -> None:
    """Bring a layout-1, -2 or -3 file to the current layout, in the caller's transaction."""
    if version == 1:
        _upgrade_to_2(conn)
    if version <= 2:
        _upgrade_to_3(conn)
    if version <= 3:
        _upgrade_to_4(conn)


def _upgrade_to_2(conn: Connection) -> None:
    """Layout 1 -> 2: add ``tx_count`` (entries per tx_id) and grow ``size`` to match."""
    conn.exec_driver_sql("ALTER TABLE entries ADD COLUMN tx_count INTEGER NOT NULL DEFAULT 1")
    # Every row of a transaction stays in the table for good (acked rows are history),
    # so counting rows per tx_id gives each transaction's size as it was committed.
    conn.exec_driver_sql(
        "UPDATE entries SET tx_count ="
        " (SELECT count(*) FROM entries AS e WHERE e.tx_id = entries.tx_id)"
    )
    conn.exec_driver_sql("pragma user_version = 2")


def _upgrade_to_3(conn: Connection) -> None:
    """Layout 2 -> 3: one ``body`` per row (the bytes layout 2 sent), meta keeps a floor."""
    meta: dict[str, str] = dict(conn.exec_driver_sql("SELECT key, value FROM meta").all())
    device_id = meta["device_id"]
    conn.exec_driver_sql("ALTER TABLE entries RENAME TO entries_2")
    for index in ("entries_state_seq", "entries_tx"):
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {index}")
    metadata.create_all(conn, tables=[entries_t])  # layout 4's shape: _upgrade_to_4 keeps it
    after = 0
    last: Any = None
    while rows := conn.exec_driver_sql(
        "SELECT * FROM entries_2 WHERE seq > ? ORDER BY seq LIMIT ?", (after, _CHUNK)
    ).all():
        conn.execute(entries_t.insert(), [_layout3_row(r, device_id) for r in rows])
        after, last = rows[-1].seq, rows[-1]
    conn.exec_driver_sql("DROP TABLE entries_2")
    # Layout 2 wrote both on every commit: keep them only where the rows disagree
    # (clock recovery pulled the HLC back after the last record).
    next_seq, last_hlc = meta.get("next_seq"), meta.get("last_hlc")
    derived = (str(after + 1), last.hlc if last is not None else None)
    if next_seq is not None and last_hlc is not None and (next_seq, last_hlc) != derived:
        conn.execute(meta_t.insert().values(key=FLOOR_KEY, value=f"{next_seq} {last_hlc}"))
    conn.execute(meta_t.delete().where(meta_t.c.key.in_(["next_seq", "last_hlc"])))
    conn.exec_driver_sql("pragma user_version = 3")


def _upgrade_to_4(conn: Connection) -> None:
    """Layout 3 -> 4: ``entries`` without the op_id and tx_id indexes; where the old ids end.

    The unique op_id constraint is an index SQLite cannot drop, so a table that has
    one is copied into the new shape (a table _upgrade_to_3 just made has none).
    """
    unique = conn.exec_driver_sql(
        "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'entries'"
        " AND name LIKE 'sqlite_autoindex_entries%'"
    ).scalar_one()
    conn.exec_driver_sql("DROP INDEX IF EXISTS entries_tx")
    if unique:
        conn.exec_driver_sql("ALTER TABLE entries RENAME TO entries_3")
        conn.exec_driver_sql("DROP INDEX IF EXISTS entries_state_seq")
        metadata.create_all(conn, tables=[entries_t])
        old = {r.name for r in conn.exec_driver_sql("PRAGMA table_info(entries_3)")}
        columns = ", ".join(c.name for c in entries_t.columns if c.name in old)
        conn.exec_driver_sql(
            f"INSERT INTO entries ({columns}) SELECT {columns} FROM entries_3 ORDER BY seq"
        )
        conn.exec_driver_sql("DROP TABLE entries_3")
    last = conn.exec_driver_sql("SELECT max(seq) FROM entries").scalar()
    conn.execute(meta_t.insert().values(key=IDS_FROM, value=str((last or 0) + 1)))
    conn.exec_driver_sql(f"pragma user_version = {LAYOUT}")


def _layout3_row(row: Any, device_id: str) -> dict[str, Any]:
    """A layout-2 row as layout 3 stores it: the entry's bytes as layout 2 sent them."""
    body = encode_entry(
        Entry(
            op_id=row.op_id,
            device_id=device_id,
            seq=row.seq,
            tx_id=row.tx_id,
            tx_count=row.tx_count,
            hlc=row.hlc,
            collection=row.collection,
            record_id=row.record_id,
            kind=row.kind,
            fields=json.loads(row.fields),
            schema_version=row.schema_version,
        )
    )
    return {
        "seq": row.seq,
        "op_id": row.op_id,
        "tx_id": row.tx_id,
        "state": row.state,
        "size": len(body),
        "body": body,
        "attempts": row.attempts,
        "status": row.status,
        "code": row.code,
        "field": row.field,
        "message": row.message,
        "replaced_by": row.replaced_by,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }

"""The device store's tables, its layout version, and the upgrades from older layouts.

Layout 4 (this release) has one index on ``entries`` instead of three:
``(state, seq)``. Ids carry the seq of their row (_ids.py), so rows are found by
op_id or tx_id through the primary key and neither id has an index; each one was
another encrypted page written by every commit (docs/performance.md). Rows from
before the upgrade keep their random ids: meta ``IDS_FROM`` is the first seq whose
ids carry it, and the older rows are searched by id among themselves.

Layout 4 also adds what the data box and delivery receipts read (docs/client.md), all
written off the record path: ``channel``, ``sent_at``, ``failure`` and
``failure_detail`` are set when a send attempt ends (release or ack), ``resubmit_of``
when a resubmit records the fixed entry; ``collection`` and ``record_id`` are
*virtual* generated columns read out of ``body`` (computed when read, never
stored, in no index), so ``record()`` writes exactly what it wrote before. The
``receipts`` table gets one row per entry the server answered, in the ack's
transaction: it is its own table so that pruning an acknowledged entry (deleting
its row and body) leaves the receipt, which has its own, longer retention. The
device journal's ``journal`` and ``commands`` tables (_journal.py, _commands.py)
are layout 4 too.

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

#: Layout version of the file (``pragma user_version``). Layout 4 adds the device
#: journal's tables (``journal``, ``commands``: _journal.py, _commands.py).
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


def _top(key: str) -> str:
    """SQL for a top-level member of the entry's canonical JSON body."""
    return f"json_extract(CAST(body AS TEXT), '$.{key}')"


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
    # Layout 4: the last send attempt (when, on which channel, and why it failed).
    sa.Column("channel", sa.String),
    sa.Column("sent_at", sa.Float),
    sa.Column("failure", sa.String),
    sa.Column("failure_detail", sa.Text),
    sa.Column("resubmit_of", sa.String),
    # Layout 4: read out of the body when selected; never stored, never indexed.
    sa.Column("collection", sa.String, sa.Computed(_top("collection"), persisted=False)),
    sa.Column("record_id", sa.String, sa.Computed(_top("record_id"), persisted=False)),
    sa.Index("entries_state_seq", "state", "seq"),
)

#: Entry columns layout 4 adds, as ``ALTER TABLE ... ADD COLUMN`` clauses.
_LAYOUT4_COLUMNS = {
    "channel": "channel VARCHAR",
    "sent_at": "sent_at FLOAT",
    "failure": "failure VARCHAR",
    "failure_detail": "failure_detail TEXT",
    "resubmit_of": "resubmit_of VARCHAR",
    "collection": f"collection VARCHAR GENERATED ALWAYS AS ({_top('collection')}) VIRTUAL",
    "record_id": f"record_id VARCHAR GENERATED ALWAYS AS ({_top('record_id')}) VIRTUAL",
}

#: One row per entry the server answered (applied, duplicate, conflict, rejected),
#: written in the ack's transaction; kept when the entry itself is pruned.
receipts_t = sa.Table(
    "receipts",
    metadata,
    sa.Column("op_id", sa.String, primary_key=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("collection", sa.String, nullable=False),
    sa.Column("record_id", sa.String, nullable=False),
    sa.Column("queued_at", sa.Float, nullable=False),
    sa.Column("sent_at", sa.Float, nullable=False),
    sa.Column("channel", sa.String, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    #: applied | duplicate | conflict | rejected (a duplicate's original in ``result``).
    sa.Column("status", sa.String, nullable=False),
    #: The server's stored result: protocol.codec.encode_result of the Result.
    sa.Column("result", sa.LargeBinary, nullable=False),
    sa.Column("acked_at", sa.Float, nullable=False),
    sa.Index("receipts_record", "collection", "record_id", "seq"),
    sa.Index("receipts_acked", "acked_at"),
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

#: The device journal (_journal.py): one row per event, ``fields`` its kind's members as
#: canonical JSON; ``acked_at`` is set when the ack of a batch whose report carried it
#: arrived (NULL: still to be sent).
journal_t = sa.Table(
    "journal",
    metadata,
    sa.Column("n", sa.Integer, primary_key=True),
    sa.Column("id", sa.String, nullable=False, unique=True),
    sa.Column("at_ms", sa.Integer, nullable=False),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("fields", sa.Text, nullable=False),
    sa.Column("acked_at", sa.Float),
    sa.Index("journal_acked", "acked_at", "n"),
)

#: Commands from the server carried out on this device (_commands.py): one row per
#: command id, so a command delivered again is not carried out again; the outcome is
#: reported until ``reported_at`` (the ack of the report that carried it).
commands_t = sa.Table(
    "commands",
    metadata,
    sa.Column("command_id", sa.String, primary_key=True),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("code", sa.String),
    sa.Column("message", sa.Text),
    sa.Column("new_op_id", sa.String),
    sa.Column("done_at", sa.Float, nullable=False),
    sa.Column("reported_at", sa.Float),
    sa.Index("commands_reported", "reported_at", "done_at"),
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
    """Layout 3 -> 4: one index on ``entries``, the data box's columns and tables, IDS_FROM.

    The unique op_id constraint is an index SQLite cannot drop, so a table that has
    one is copied into the new shape (a table _upgrade_to_3 just made has none).
    Rows keep every value; the new columns start empty (NULL: no attempt known), and
    the generated ones read the bodies already there. Entries answered before the
    upgrade get no receipt row: their ``state``/``status`` still say it while they last.
    """
    conn.exec_driver_sql("DROP INDEX IF EXISTS entries_tx")
    if _has_unique_op_id(conn):
        _rebuild_entries(conn)
    have = {row[1] for row in conn.exec_driver_sql("pragma table_xinfo(entries)")}
    for name, clause in _LAYOUT4_COLUMNS.items():
        if name not in have:
            conn.exec_driver_sql(f"ALTER TABLE entries ADD COLUMN {clause}")
    metadata.create_all(conn)  # only the tables (and their indexes) that are missing
    last = conn.exec_driver_sql("SELECT max(seq) FROM entries").scalar()
    conn.execute(meta_t.insert().values(key=IDS_FROM, value=str((last or 0) + 1)))
    conn.exec_driver_sql(f"pragma user_version = {LAYOUT}")


def _has_unique_op_id(conn: Connection) -> bool:
    """Whether ``entries`` still carries layout 3's unique op_id index."""
    count = conn.exec_driver_sql(
        "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'entries'"
        " AND name LIKE 'sqlite_autoindex_entries%'"
    ).scalar_one()
    return bool(count)


def _rebuild_entries(conn: Connection) -> None:
    """Copy ``entries`` into layout 4's shape: only the stored columns the old table has."""
    conn.exec_driver_sql("ALTER TABLE entries RENAME TO entries_3")
    conn.exec_driver_sql("DROP INDEX IF EXISTS entries_state_seq")
    metadata.create_all(conn, tables=[entries_t])
    old = {r[1] for r in conn.exec_driver_sql("pragma table_xinfo(entries_3)") if r[6] == 0}
    stored = [c.name for c in entries_t.columns if c.computed is None and c.name in old]
    columns = ", ".join(stored)
    conn.exec_driver_sql(
        f"INSERT INTO entries ({columns}) SELECT {columns} FROM entries_3 ORDER BY seq"
    )
    conn.exec_driver_sql("DROP TABLE entries_3")


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

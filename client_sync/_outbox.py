"""The encrypted outbox: every change a rep makes, kept until the server has answered it.

Theory of operation
-------------------
The outbox is one SQLCipher file, reached through SQLAlchemy Core on the
``sqlite+pysqlcipher`` dialect, over a single connection guarded by one lock (the
app thread records while the sync thread drains; SQLite serialises writers anyway,
and one connection means one key derivation).

Opening (code in _cipher.py). A valid outbox always opens, and a file that will not
open is never written: not the file, not its -wal (only the -shm, the WAL index, which
holds no data, may be created or rebuilt), and never deleted.

1. Before SQLite sees the path: a missing file or an empty one (what SQLite leaves
   when the first open is killed) becomes a new outbox for the app, and is
   NotAnOutbox for tools (``device_id=None``), which create nothing. A plain SQLite
   file, a directory, or a size that is not whole 4 KiB pages (an outbox never has
   one; SQLite would even take a file under 16 bytes for a new one) is refused here.
2. With a -wal, -shm or -journal beside the file, a normal connection could
   checkpoint (or roll back) into it on close even with a wrong key, so the key is
   first proven on a separate ``mode=ro`` connection: its file descriptor cannot
   write, but it reads the file through its -wal like any reader. (It used to be
   ``immutable=1``, which reads the main file alone: after a kill in the middle of
   a checkpoint that file is not consistent on its own, the probe failed with
   "database disk image is malformed", and the outbox stayed unopenable for good.)
   A hot -journal cannot be rolled back read-only; page 1's HMAC decides the key.
3. Our ``creator`` makes the DBAPI connection and runs ``pragma cipher_log_level =
   NONE`` first (SQLCipher otherwise prints decrypt failures on fd 2; the setting is
   process-wide); then the dialect's own connect hook runs ``pragma key``; then ours
   reads ``sqlite_master``, which proves the key when no sidecar exists, and sets
   ``synchronous=FULL`` (a commit is on disk when it returns), a busy timeout,
   in-memory temp storage and the checkpoint threshold (OutboxConfig).
4. The layout is checked (``user_version``, the core tables: a keyed database of
   another app is NotAnOutbox and is not touched) or created, and only then is the
   file switched to WAL, a no-op after the first time.
5. Any failure to decode the file on the way is diagnosed from each page's own HMAC
   (``cipher_integrity_check`` on the main file, ``immutable=1``; it only names the
   failure, it never decides that a file opens): page 1 verifies, or other pages
   do, means the key is right and the file is DamagedOutbox; no page verifies is
   WrongKey (random whole pages, or a destroyed salt, look exactly the same); not
   whole pages is NotAnOutbox.

The driver's own transaction handling is off (``isolation_level=None``); every
write transaction starts with ``BEGIN IMMEDIATE``, so a read-then-write (the next
seq, the last HLC stamp) happens under the write lock; reads get a plain BEGIN.

Rows. ``entries`` is append-only: one row per change, ``seq`` its INTEGER PRIMARY
KEY, taken from ``meta.next_seq`` inside the recording transaction (read at its
first append, written back once just before its commit, under the write lock), so
a rolled back transaction leaves no gap and seq is gap-free over the device's life.
A transaction's rows are held in its Tx and inserted just before its commit, when
``tx_count`` (how many it holds, which the server checks a batch carries whole) is
known; record() is durable only at that commit anyway.
Only ``state`` and the server's verdict columns ever change, and only along the
table in _states.py (every move first checks each row is in the state it
expects). ``meta`` holds the device id, next seq, last HLC stamp and why syncing
last stopped; ``audit`` keeps one row per discard and resubmit.

Batches. The next batch is chosen from a bounded window (``seq, tx_id, size`` of
at most max_entries + 1 pending rows): whole transactions, oldest first, while
they fit the channel's entry limit and the byte limit; a transaction too big for
the channel's limit goes alone. ``size`` is the exact byte length of the entry in
the canonical batch encoding, stored when recorded, so the batch's byte count is
known without loading it (while the transaction is open it is sized with the widest
``tx_count`` it may get, so the limit checks then err on the safe side). Taking a
batch moves it to in_flight and commits before the network is touched; the ack is
applied in one transaction; a failed send puts it back to pending; on open,
anything still in_flight (a crash mid-send) goes back to pending. Nothing is ever
deleted: acked rows stay as history.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import sqlcipher3
from sqlalchemy.engine import Connection
from uuid6 import uuid7

from conflict import hlc as hlc_mod
from protocol.codec import canonical_json, encode_batch
from protocol.constants import (
    MAX_BATCH_BYTES,
    MAX_ENTRIES_PER_BATCH,
    MAX_ENTRIES_PER_METERED_BATCH,
    PROTOCOL_VERSION,
)
from protocol.errors import EntryInvalid
from protocol.model import Ack, Batch, Entry, Kind

from ._cipher import (
    IMMEDIATE,
    check_file,
    cipher_engine,
    opening_error,
    password_for,
    prove_key,
    translate,
    use_wal,
)
from ._states import State, check
from .errors import IllegalTransition, NotAnOutbox, OutboxError, UnknownEntry

#: Layout version of the outbox file (``pragma user_version``). Layout 2 added
#: ``entries.tx_count``; a layout-1 file is upgraded when it is opened.
SCHEMA_VERSION = 2

#: Longest device id: its HLC stamp "13 digits-5 digits-<device>" must fit the wire's 64.
MAX_DEVICE_ID_LENGTH = 64 - 20


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

    def __post_init__(self) -> None:
        if not 1 <= self.max_metered_entries <= self.max_entries <= MAX_ENTRIES_PER_BATCH:
            raise ValueError(
                f"need 1 <= max_metered_entries <= max_entries <= {MAX_ENTRIES_PER_BATCH}"
            )
        if not 1_024 <= self.max_batch_bytes <= MAX_BATCH_BYTES:
            raise ValueError(f"max_batch_bytes must be within 1024..{MAX_BATCH_BYTES}")
        if self.busy_timeout_ms < 0:
            raise ValueError("busy_timeout_ms must be >= 0")
        if self.wal_autocheckpoint < 1:
            raise ValueError("wal_autocheckpoint must be >= 1 (0 would let the WAL grow forever)")


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


#: A parked entry is an outbox entry in state ``parked``; its verdict says why.
ParkedEntry = OutboxEntry


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying one ack did, by entry."""

    applied: int = 0
    duplicate: int = 0
    conflict: int = 0
    parked: int = 0


@dataclass(slots=True)
class Tx:
    """An open local transaction: its connection, tx_id, and what it holds so far."""

    conn: Connection
    tx_id: str
    count: int = 0
    #: Encoded bytes so far, each entry sized with the widest ``tx_count`` it may get.
    size: int = 0
    op_ids: list[str] = field(default_factory=list)
    #: Rows waiting for the commit, which inserts them once ``tx_count`` is known.
    rows: list[dict[str, Any]] = field(default_factory=list)
    #: The next seq and last HLC stamp, read from ``meta`` at the first append and
    #: written back once, just before the commit (the write lock is held throughout).
    next_seq: int | None = None
    last_hlc: hlc_mod.Hlc | None = None


_metadata = sa.MetaData()

entries_t = sa.Table(
    "entries",
    _metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("op_id", sa.String, nullable=False, unique=True),
    sa.Column("tx_id", sa.String, nullable=False),
    sa.Column("hlc", sa.String, nullable=False),
    sa.Column("collection", sa.String, nullable=False),
    sa.Column("record_id", sa.String, nullable=False),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("fields", sa.Text, nullable=False),
    sa.Column("schema_version", sa.Integer, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("state", sa.String, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("status", sa.String),
    sa.Column("code", sa.String),
    sa.Column("field", sa.String),
    sa.Column("message", sa.Text),
    sa.Column("replaced_by", sa.String),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    # Last, where layout 2's ALTER TABLE adds it to a layout-1 file.
    sa.Column("tx_count", sa.Integer, nullable=False),
    sa.Index("entries_state_seq", "state", "seq"),
    sa.Index("entries_tx", "tx_id"),
)

meta_t = sa.Table(
    "meta",
    _metadata,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

audit_t = sa.Table(
    "audit",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("action", sa.String, nullable=False),
    sa.Column("op_id", sa.String, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
)

#: Statements built once: building a Core statement costs more than running it here.
_INSERT_ENTRY = entries_t.insert()
_READ_META = sa.select(meta_t.c.key, meta_t.c.value)
_SET_META = meta_t.update().where(meta_t.c.key == sa.bindparam("k")).values(value=sa.bindparam("v"))

#: ``state`` behind SQLite's unary plus, which keeps the planner off the (state, seq)
#: index: moving a batch must find its rows by op_id, not walk every row in a state
#: (that made taking each batch of a 100 k outbox read all 100 k).
_unindexed_state = sa.literal_column("+state", sa.String)

#: A result row (SQLAlchemy's Row generics differ between 2.0 and 2.1).
_Row = Any


_PLACEHOLDER_ID = "00000000-0000-7000-8000-000000000000"

#: Tables every outbox layout has; a keyed database without them is not an outbox.
_CORE_TABLES = frozenset({"entries", "meta"})


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
        self.path = str(path)
        self.config = config or OutboxConfig()
        self._clock = clock
        self._lock = threading.RLock()
        self._local = threading.local()
        if device_id is not None:
            _check_device_id(device_id)
        password = password_for(key)
        self._engine = cipher_engine(
            self.path, password, self.config.busy_timeout_ms, self.config.wal_autocheckpoint
        )
        self._writer = self._engine.execution_options(**{IMMEDIATE: True})
        quoted = self._engine.dialect.identifier_preparer.quote_identifier(password)
        check_file(self.path, quoted, create=device_id is not None)
        try:
            self.device_id = self._open(quoted, device_id, recover)
        except (sa.exc.SQLAlchemyError, sqlcipher3.Error) as exc:
            self._engine.dispose()  # closed before diagnosing: it holds no lock then
            raise opening_error(exc, self.path, quoted) from exc
        except BaseException:
            self._engine.dispose()
            raise
        self._overhead = len(
            encode_batch(Batch(PROTOCOL_VERSION, _PLACEHOLDER_ID, self.device_id, ()))
        )

    def close(self) -> None:
        """Close the connection; the file stays as the last commit left it."""
        with self._lock:
            self._engine.dispose()

    # -- recording ----------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """One local transaction: commit on exit, roll back everything on an exception."""
        with self._lock:
            if self.current() is not None:
                raise OutboxError(
                    "a transaction is already open on this thread (they do not nest)",
                    path=self.path,
                )
            with self._guard("transaction"), self._writer.begin() as conn:
                tx = Tx(conn, str(uuid7()))
                self._local.tx = tx
                try:
                    yield tx
                    self._insert(conn, tx)
                    if tx.next_seq is not None and tx.last_hlc is not None:
                        self._set_meta(conn, "next_seq", str(tx.next_seq))
                        self._set_meta(conn, "last_hlc", str(tx.last_hlc))
                finally:
                    self._local.tx = None

    def current(self) -> Tx | None:
        """The transaction this thread has open, if any."""
        tx: Tx | None = getattr(self._local, "tx", None)
        return tx

    def append(
        self,
        tx: Tx,
        *,
        collection: str,
        record_id: str,
        kind: Kind,
        fields: Mapping[str, Any],
        schema_version: int,
    ) -> str:
        """Add one already-validated change to ``tx``; return its op_id."""
        conn = tx.conn
        with self._guard("record"):
            if tx.next_seq is None or tx.last_hlc is None:
                meta = dict(conn.execute(_READ_META).all())
                tx.next_seq = int(_required(meta, "next_seq"))
                tx.last_hlc = hlc_mod.parse(_required(meta, "last_hlc"))
            seq = tx.next_seq
            stamp = hlc_mod.tick(tx.last_hlc, int(self._clock() * 1000))
            op_id = str(uuid7())
            values = dict(fields)
            # The entry exactly as the batch encoding writes it (see protocol.Entry).
            wire = {
                "op_id": op_id,
                "device_id": self.device_id,
                "seq": seq,
                "tx_id": tx.tx_id,
                "tx_count": self.config.max_entries,  # the widest it may be; exact at commit
                "hlc": str(stamp),
                "collection": collection,
                "record_id": record_id,
                "kind": kind,
                "fields": values,
                "schema_version": schema_version,
            }
            size = len(canonical_json(wire))
            self._check_fits(tx, size)
            now = self._clock()
            tx.rows.append(
                {
                    "seq": seq,
                    "op_id": op_id,
                    "tx_id": tx.tx_id,
                    "hlc": wire["hlc"],
                    "collection": collection,
                    "record_id": record_id,
                    "kind": kind,
                    "fields": canonical_json(values).decode(),
                    "schema_version": schema_version,
                    "size": size,
                    "state": State.PENDING.value,
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        tx.next_seq = seq + 1
        tx.last_hlc = stamp
        tx.count += 1
        tx.size += size
        tx.op_ids.append(op_id)
        return op_id

    # -- sending ------------------------------------------------------------------

    def take_batch(self, *, metered: bool, skip: Collection[str] = ()) -> Batch | None:
        """Move the oldest whole pending transactions that fit into in_flight; None if none.

        Transactions in ``skip`` (set aside by the sync loop) are left where they are.
        """
        limit = self.config.max_metered_entries if metered else self.config.max_entries
        window = self.config.max_entries + 1
        pending = entries_t.c.state == State.PENDING.value
        if skip:
            pending = sa.and_(pending, entries_t.c.tx_id.not_in(list(skip)))
        with self._lock, self._guard("take a batch"), self._writer.begin() as conn:
            heads = conn.execute(
                sa.select(entries_t.c.seq, entries_t.c.tx_id, entries_t.c.size)
                .where(pending)
                .order_by(entries_t.c.seq)
                .limit(window)
            ).all()
            if not heads:
                return None
            groups = _group(heads)
            if len(heads) == window and len(groups) == 1:
                # One transaction wider than the window: it goes alone, whole.
                where = entries_t.c.tx_id == groups[0][0].tx_id
            else:
                if len(heads) == window:
                    groups = groups[:-1]  # the last group may be cut by the window
                chosen = self._fit(groups, limit)
                where = entries_t.c.seq.between(chosen[0][0], chosen[-1][0])
            rows = conn.execute(
                sa.select(entries_t).where(where, pending).order_by(entries_t.c.seq)
            ).all()
            return self._launch(conn, rows)

    def take_transactions(self, tx_ids: Sequence[str], *, metered: bool) -> Batch | None:
        """Move the pending entries of these transactions (those that fit, oldest first)
        into in_flight as one batch; None if none of them is pending."""
        limit = self.config.max_metered_entries if metered else self.config.max_entries
        with self._lock, self._guard("take a batch"), self._writer.begin() as conn:
            rows = conn.execute(
                sa.select(entries_t)
                .where(
                    entries_t.c.state == State.PENDING.value,
                    entries_t.c.tx_id.in_(list(tx_ids)),
                )
                .order_by(entries_t.c.seq)
            ).all()
            if not rows:
                return None
            chosen = {r.tx_id for r in self._fit(_group(rows), limit)}
            return self._launch(conn, [r for r in rows if r.tx_id in chosen])

    def park(self, batch: Batch, code: str, message: str) -> None:
        """Park an in-flight batch with the client's own verdict (the server never gave one)."""
        with self._lock, self._guard("park a batch"), self._writer.begin() as conn:
            self._move(
                conn,
                [e.op_id for e in batch.entries],
                State.IN_FLIGHT,
                State.PARKED,
                status=None,
                code=code,
                field=None,
                message=message,
            )

    def _launch(self, conn: Connection, rows: Sequence[_Row]) -> Batch:
        """Move ``rows`` to in_flight and make them a batch."""
        self._move(
            conn,
            [r.op_id for r in rows],
            State.PENDING,
            State.IN_FLIGHT,
            attempts=entries_t.c.attempts + 1,
        )
        return Batch(
            protocol_version=self.config.protocol_version,
            batch_id=str(uuid7()),
            device_id=self.device_id,
            entries=tuple(self._entry(r) for r in rows),
        )

    def release(self, batch: Batch) -> None:
        """Put a batch that did not get an ack back to pending."""
        with self._lock, self._guard("release a batch"), self._writer.begin() as conn:
            self._move(conn, [e.op_id for e in batch.entries], State.IN_FLIGHT, State.PENDING)

    def apply(self, batch: Batch, ack: Ack) -> Applied:
        """Record the server's verdicts in one transaction: acked or parked with the reason."""
        applied = duplicate = conflict = parked = 0
        # Entries with the same verdict move together: one statement per verdict, not
        # per entry (a batch is mostly "applied" with nothing else to say).
        moves: dict[tuple[State, str, str | None, str | None, str | None], list[str]] = {}
        for entry, result in zip(batch.entries, ack.results, strict=True):
            outcome = result.outcome
            dst = State.PARKED if outcome.status == "rejected" else State.ACKED
            verdict = (dst, result.status, outcome.code, outcome.field, outcome.message)
            moves.setdefault(verdict, []).append(entry.op_id)
            if dst is State.PARKED:
                parked += 1
            elif result.status == "duplicate":
                duplicate += 1
            elif result.status == "conflict":
                conflict += 1
            else:
                applied += 1
        with self._lock, self._guard("apply an ack"), self._writer.begin() as conn:
            for (dst, status, code, field_, message), op_ids in moves.items():
                self._move(
                    conn,
                    op_ids,
                    State.IN_FLIGHT,
                    dst,
                    status=status,
                    code=code,
                    field=field_,
                    message=message,
                )
        return Applied(applied, duplicate, conflict, parked)

    # -- the offline data box -------------------------------------------------------

    def resubmit(
        self, op_id: str, fields: Mapping[str, Any], schema_version: int, reason: str
    ) -> str:
        """Record a parked entry again with fixed ``fields``, with its parked siblings.

        The parked entries of the same original transaction go back together, as one
        new transaction, so the transaction stays all-or-nothing on the server.
        Returns the new op_id of ``op_id``'s replacement.
        """
        with self.transaction() as tx:
            conn = tx.conn
            target = self._row(conn, op_id)
            check(target.state, State.RESUBMITTED, op_id=op_id)
            group = conn.execute(
                sa.select(entries_t)
                .where(
                    entries_t.c.tx_id == target.tx_id,
                    entries_t.c.state == State.PARKED.value,
                )
                .order_by(entries_t.c.seq)
            ).all()
            new_id = ""
            for row in group:
                if row.op_id == op_id:
                    values, version = dict(fields), schema_version
                else:
                    values, version = json.loads(row.fields), row.schema_version
                new = self.append(
                    tx,
                    collection=row.collection,
                    record_id=row.record_id,
                    kind=row.kind,
                    fields=values,
                    schema_version=version,
                )
                new_id = new if row.op_id == op_id else new_id
                self._move(conn, [row.op_id], State.PARKED, State.RESUBMITTED, replaced_by=new)
                self._audit(conn, "resubmit", row, reason, replaced_by=new)
            return new_id

    def discard(self, op_id: str, reason: str) -> None:
        """Give up a parked entry; an audit row keeps what it was and why it went."""
        if not reason.strip():
            raise ValueError("a discard needs a reason (it is audited)")
        with self.transaction() as tx:
            row = self._row(tx.conn, op_id)
            self._move(tx.conn, [op_id], State.PARKED, State.DISCARDED)
            self._audit(tx.conn, "discard", row, reason)

    # -- reading ----------------------------------------------------------------

    def entry(self, op_id: str) -> OutboxEntry:
        """The entry with this op_id, in whatever state."""
        with self._lock, self._guard("read"), self._engine.connect() as conn:
            return self._view(self._row(conn, op_id))

    def entries(
        self, *, state: State | str | None = None, after_seq: int = 0, limit: int = 1000
    ) -> list[OutboxEntry]:
        """Up to ``limit`` entries with seq > ``after_seq``, oldest first (page through)."""
        query = sa.select(entries_t).where(entries_t.c.seq > after_seq)
        if state is not None:
            query = query.where(entries_t.c.state == State(state).value)
        with self._lock, self._guard("read"), self._engine.connect() as conn:
            rows = conn.execute(query.order_by(entries_t.c.seq).limit(limit)).all()
            return [self._view(r) for r in rows]

    def stats(self) -> dict[str, int]:
        """Entry counts by state, every state present."""
        counts = dict.fromkeys((s.value for s in State), 0)
        with self._lock, self._guard("read"), self._engine.connect() as conn:
            for state, n in conn.execute(
                sa.select(entries_t.c.state, sa.func.count()).group_by(entries_t.c.state)
            ):
                counts[state] = n
        return counts

    def audit_log(self) -> list[dict[str, Any]]:
        """Every discard and resubmit, oldest first."""
        with self._lock, self._guard("read"), self._engine.connect() as conn:
            rows = conn.execute(sa.select(audit_t).order_by(audit_t.c.id)).all()
        return [{**r._asdict(), "detail": json.loads(r.detail)} for r in rows]

    def get_meta(self, key: str) -> str | None:
        """A meta value, or None."""
        with self._lock, self._guard("read"), self._engine.connect() as conn:
            value: str | None = conn.scalar(sa.select(meta_t.c.value).where(meta_t.c.key == key))
            return value

    def set_meta(self, key: str, value: str | None) -> None:
        """Set (or with None, remove) a meta value."""
        with self._lock, self._guard("write"), self._writer.begin() as conn:
            if value is None:
                conn.execute(meta_t.delete().where(meta_t.c.key == key))
            else:
                self._set_meta(conn, key, value)

    # -- helpers ------------------------------------------------------------------

    def _open(self, quoted: str, device_id: str | None, recover: bool) -> str:
        """Prove the key without writing, then set up or check the layout; the device id."""
        prove_key(self.path, quoted, self.config.busy_timeout_ms)
        with self._writer.begin() as conn:
            device = self._init_schema(conn, device_id)
            if recover:
                self._recover(conn)
        use_wal(self._engine)
        return device

    def _init_schema(self, conn: Connection, device_id: str | None) -> str:
        version = int(conn.exec_driver_sql("pragma user_version").scalar_one())
        if version > SCHEMA_VERSION:
            raise OutboxError(
                f"{self.path} was written by a newer fieldsync (layout {version})", path=self.path
            )
        if version == 1:
            _upgrade_to_2(conn)
        tables = set(conn.scalars(sa.text("select name from sqlite_master where type = 'table'")))
        if version == 0:
            if tables:  # another app's encrypted database, under this very key
                raise NotAnOutbox(self.path, f"it holds other tables: {', '.join(sorted(tables))}")
            if device_id is None:
                raise NotAnOutbox(self.path, "it is an empty encrypted database")
            _metadata.create_all(conn)
            conn.exec_driver_sql(f"pragma user_version = {SCHEMA_VERSION}")
            for key, value in (
                ("device_id", device_id),
                ("next_seq", "1"),
                ("last_hlc", str(hlc_mod.zero(device_id))),
            ):
                conn.execute(meta_t.insert().values(key=key, value=value))
            return device_id
        if missing := _CORE_TABLES - tables:
            raise NotAnOutbox(self.path, f"it has no {', '.join(sorted(missing))} table")
        stored = self._meta(conn, "device_id")
        if device_id is not None and stored != device_id:
            raise OutboxError(
                f"{self.path} is the outbox of device {stored}, not {device_id}", path=self.path
            )
        return stored

    def _recover(self, conn: Connection) -> None:
        check(State.IN_FLIGHT, State.PENDING)
        conn.execute(
            entries_t.update()
            .where(entries_t.c.state == State.IN_FLIGHT.value)
            .values(state=State.PENDING.value, updated_at=self._clock())
        )

    def _insert(self, conn: Connection, tx: Tx) -> None:
        """Insert a committing transaction's rows, now that its ``tx_count`` is known."""
        if not tx.rows:
            return
        count = len(tx.rows)
        # append() sized each entry with tx_count at its widest; the digits it saves:
        saved = len(str(self.config.max_entries)) - len(str(count))
        with self._guard("record"):
            conn.execute(
                _INSERT_ENTRY,
                [{**row, "tx_count": count, "size": row["size"] - saved} for row in tx.rows],
            )

    def _fit(self, groups: list[list[_Row]], limit: int) -> list[_Row]:
        chosen: list[_Row] = []
        size = self._overhead
        for group in groups:
            group_size = sum(r.size for r in group) + len(group)
            if chosen and (
                len(chosen) + len(group) > limit or size + group_size > self.config.max_batch_bytes
            ):
                break
            chosen.extend(group)
            size += group_size
        return chosen

    def _check_fits(self, tx: Tx, size: int) -> None:
        budget = self.config.max_batch_bytes - self._overhead
        if size + 1 > budget:
            raise EntryInvalid(
                "entry_too_large", None, f"entry is {size} bytes encoded; at most {budget - 1}"
            )
        if tx.count + 1 > self.config.max_entries:
            raise EntryInvalid(
                "transaction_too_large",
                None,
                f"a transaction holds at most {self.config.max_entries} entries",
            )
        if tx.size + tx.count + size + 1 > budget:
            raise EntryInvalid(
                "transaction_too_large", None, f"a transaction takes at most {budget} bytes"
            )

    def _move(
        self,
        conn: Connection,
        op_ids: Sequence[str],
        src: State,
        dst: State,
        **values: Any,
    ) -> None:
        """Move every op_id from ``src`` to ``dst`` or raise (rolling back the transaction)."""
        check(src, dst)
        if not op_ids:
            return
        found = dict(
            conn.execute(
                sa.select(entries_t.c.op_id, entries_t.c.state).where(entries_t.c.op_id.in_(op_ids))
            ).all()
        )
        for op_id in op_ids:
            if op_id not in found:
                raise UnknownEntry(op_id, path=self.path)
            if found[op_id] != src.value:
                raise IllegalTransition(found[op_id], dst.value, op_id=op_id)
        result = conn.execute(
            entries_t.update()
            .where(entries_t.c.op_id.in_(op_ids), _unindexed_state == src.value)
            .values(state=dst.value, updated_at=self._clock(), **values)
        )
        if result.rowcount != len(op_ids):  # pragma: no cover - BEGIN IMMEDIATE excludes this
            raise OutboxError(f"outbox {self.path} changed under a transaction", path=self.path)

    def _row(self, conn: Connection, op_id: str) -> _Row:
        row = conn.execute(sa.select(entries_t).where(entries_t.c.op_id == op_id)).first()
        if row is None:
            raise UnknownEntry(op_id, path=self.path)
        return row

    def _audit(
        self,
        conn: Connection,
        action: str,
        row: _Row,
        reason: str,
        replaced_by: str | None = None,
    ) -> None:
        detail = {
            "seq": row.seq,
            "tx_id": row.tx_id,
            "collection": row.collection,
            "record_id": row.record_id,
            "kind": row.kind,
            "fields": json.loads(row.fields),
            "verdict": {"code": row.code, "field": row.field, "message": row.message},
            "replaced_by": replaced_by,
        }
        conn.execute(
            audit_t.insert().values(
                at=self._clock(),
                action=action,
                op_id=row.op_id,
                reason=reason,
                detail=canonical_json(detail).decode(),
            )
        )

    def _entry(self, row: _Row) -> Entry:
        return Entry(
            op_id=row.op_id,
            device_id=self.device_id,
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

    @staticmethod
    def _view(row: _Row) -> OutboxEntry:
        return OutboxEntry(
            op_id=row.op_id,
            seq=row.seq,
            tx_id=row.tx_id,
            hlc=row.hlc,
            collection=row.collection,
            record_id=row.record_id,
            kind=row.kind,
            fields=json.loads(row.fields),
            schema_version=row.schema_version,
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

    @staticmethod
    def _meta(conn: Connection, key: str) -> str:
        value = conn.scalar(sa.select(meta_t.c.value).where(meta_t.c.key == key))
        if value is None:
            raise OutboxError(f"outbox meta {key!r} is missing")
        return str(value)

    @staticmethod
    def _set_meta(conn: Connection, key: str, value: str) -> None:
        updated = conn.execute(_SET_META, {"k": key, "v": value})
        if updated.rowcount == 0:
            conn.execute(meta_t.insert().values(key=key, value=value))

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """Translate SQLAlchemy and sqlcipher3 errors into OutboxError (or DamagedOutbox)."""
        try:
            yield
        except sa.exc.SQLAlchemyError as exc:
            raise translate(exc, self.path, what) from exc
        except sqlcipher3.Error as exc:
            raise translate(exc, self.path, what) from exc


def _required(meta: Mapping[str, str], key: str) -> str:
    if key not in meta:
        raise OutboxError(f"outbox meta {key!r} is missing")
    return meta[key]


def _upgrade_to_2(conn: Connection) -> None:
    """Layout 1 -> 2: add ``tx_count`` (entries per tx_id) and grow ``size`` to match."""
    conn.exec_driver_sql("ALTER TABLE entries ADD COLUMN tx_count INTEGER NOT NULL DEFAULT 1")
    # Every row of a transaction stays in the table for good (acked rows are history),
    # so counting rows per tx_id gives each transaction's size as it was committed.
    conn.exec_driver_sql(
        "UPDATE entries SET tx_count ="
        " (SELECT count(*) FROM entries AS e WHERE e.tx_id = entries.tx_id)"
    )
    # The canonical encoding now also holds '"tx_count":N,' (12 bytes + the digits).
    conn.exec_driver_sql("UPDATE entries SET size = size + 12 + length(tx_count)")
    conn.exec_driver_sql("pragma user_version = 2")


def _check_device_id(device_id: str) -> None:
    # The device id is the node of every HLC stamp: it must fit the strict stamp form.
    if not (0 < len(device_id) <= MAX_DEVICE_ID_LENGTH and hlc_mod.valid_node(device_id)):
        raise ValueError(
            f"device_id must be 1..{MAX_DEVICE_ID_LENGTH} characters of [0-9A-Za-z._:~-]"
        )


def _group(rows: Iterable[_Row]) -> list[list[_Row]]:
    """Split seq-ordered rows into runs of one tx_id."""
    groups: list[list[_Row]] = []
    for row in rows:
        if groups and groups[-1][-1].tx_id == row.tx_id:
            groups[-1].append(row)
        else:
            groups.append([row])
    return groups

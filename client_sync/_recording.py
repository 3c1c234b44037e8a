"""Recording: stamp each change, encode it once, insert a transaction's rows at its commit.

``entries`` is append-only: one row per change, ``seq`` its INTEGER PRIMARY KEY. The
next seq and the last HLC stamp live in memory, under the store's lock: derived once
at open from the last row (``seq``, and the HLC inside its bytes), and advanced only
when a recording transaction has committed, so a rolled back transaction leaves no
gap and seq is gap-free over the device's life. Nothing is written to ``meta`` per
record. Where the rows cannot say the value, a *floor* in meta does (``"<seq> <hlc>"``,
_tables.FLOOR_KEY): clock recovery pulling the HLC back writes one, and so must any
future code that deletes rows (pruning): ``write_floor`` before the DELETE, in the
same transaction. At open the next seq is the larger of the last row's + 1 and the
floor's; the last HLC is the floor's when no row came after it, else the last row's.

Each entry is encoded once, at ``append`` (``protocol.codec.encode_entry``), with
``tx_count`` at the widest it may get so the size checks err on the safe side; at the
commit, when the count is known, the count's digits are put in place in those bytes
(``_with_count``), and the rows go in with one ``executemany`` on the DBAPI connection
(measured faster than SQLAlchemy Core here; docs/client.md). record() is durable only
at that COMMIT (``synchronous=FULL``). A lone record() (``record_one``) is encoded
with its count of 1 and inserted by ``Store.write_one``. Every op_id carries its
entry's seq and every tx_id its first entry's (_ids.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from conflict import hlc as hlc_mod
from protocol.codec import batch_overhead, decode_entry, encode_entry
from protocol.errors import EntryInvalid
from protocol.model import Entry, Kind

from . import _tables as tables
from ._config import OutboxConfig
from ._ids import new_id
from ._states import State
from ._store import Store, meta_value, put_meta
from .errors import OutboxError

_PLACEHOLDER_ID = "00000000-0000-7000-8000-000000000000"
_PENDING = State.PENDING.value


@dataclass(slots=True)
class Tx:
    """An open local transaction: its connection, tx_id, and what it holds so far."""

    #: The SQLAlchemy connection, for a transaction that also reads and moves rows
    #: (the data box); None on the lean record path.
    conn: Connection | None
    #: The DBAPI connection the rows are inserted through.
    dbapi: Any
    tx_id: str
    next_seq: int
    last_hlc: hlc_mod.Hlc
    count: int = 0
    #: Encoded bytes so far, each entry sized with the widest ``tx_count`` it may get.
    size: int = 0
    op_ids: list[str] = field(default_factory=list)
    #: (seq, op_id, body) of each entry, inserted at the commit.
    rows: list[tuple[int, str, bytes]] = field(default_factory=list)


class Recorder:
    """Appends changes to the store's entries; keeps the next seq and last HLC in memory."""

    def __init__(self, store: Store, config: OutboxConfig, clock: Callable[[], float]) -> None:
        self._store = store
        self._config = config
        self._clock = clock
        self._local = threading.local()
        self.device_id = store.device_id
        self._overhead = batch_overhead(config.protocol_version, _PLACEHOLDER_ID, self.device_id)
        #: The widest tx_count, as encoded at append and replaced at the commit.
        self._widest = b'"tx_count":%d,' % config.max_entries
        with store.read("read the last entry") as conn:
            self.next_seq, self.last_hlc = _derive(conn, self.device_id)

    @contextmanager
    def transaction(self, *, sql: bool = False) -> Iterator[Tx]:
        """One local transaction: commit on exit, roll back everything on an exception.

        ``sql``: the transaction also runs SQLAlchemy statements (``tx.conn``).
        """
        with self._store.lock:
            if self.current() is not None:
                raise OutboxError(
                    "a transaction is already open on this thread (they do not nest)",
                    path=self._store.path,
                )
            with self._open(sql) as (conn, dbapi):
                tx = Tx(conn, dbapi, new_id(self.next_seq), self.next_seq, self.last_hlc)
                self._local.tx = tx
                try:
                    yield tx
                    self._insert(tx)
                finally:
                    self._local.tx = None
            # Committed (the ``with`` above returned): only now do the counters move.
            self.next_seq, self.last_hlc = tx.next_seq, tx.last_hlc

    @contextmanager
    def _open(self, sql: bool) -> Iterator[tuple[Connection | None, Any]]:
        if sql:
            with self._store.write("transaction") as conn:
                yield conn, conn.connection.driver_connection
        else:
            with self._store.raw_write("record") as dbapi:
                yield None, dbapi

    def current(self) -> Tx | None:
        """The transaction this thread has open, if any."""
        tx: Tx | None = getattr(self._local, "tx", None)
        return tx

    def record_one(
        self,
        *,
        collection: str,
        record_id: str,
        kind: Kind,
        fields: Mapping[str, Any],
        schema_version: int,
    ) -> str:
        """One already-validated change as its own transaction, durable on return; its op_id.

        What ``transaction()`` + ``append`` do for one entry, without the Tx, the
        count put in place at the commit, or a context manager (docs/client.md).
        """
        with self._store.lock:
            if self.current() is not None:
                raise OutboxError("record_one inside a transaction", path=self._store.path)
            now = self._clock()
            stamp = hlc_mod.tick(self.last_hlc, int(now * 1000))
            seq = self.next_seq
            op_id, tx_id = new_id(seq), new_id(seq)
            body = encode_entry(
                Entry(
                    op_id=op_id,
                    device_id=self.device_id,
                    seq=seq,
                    tx_id=tx_id,
                    tx_count=1,
                    hlc=str(stamp),
                    collection=collection,
                    record_id=record_id,
                    kind=kind,
                    fields=dict(fields),
                    schema_version=schema_version,
                )
            )
            self._check_size(len(body))
            row = (seq, op_id, tx_id, _PENDING, len(body), body, 0, now, now)
            self._store.write_one(tables.INSERT_SQL, row, "record")
            self.next_seq, self.last_hlc = seq + 1, stamp
        return op_id

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
        stamp = hlc_mod.tick(tx.last_hlc, int(self._clock() * 1000))
        op_id = new_id(tx.next_seq)
        body = encode_entry(
            Entry(
                op_id=op_id,
                device_id=self.device_id,
                seq=tx.next_seq,
                tx_id=tx.tx_id,
                tx_count=self._config.max_entries,  # the widest it may be; exact at commit
                hlc=str(stamp),
                collection=collection,
                record_id=record_id,
                kind=kind,
                fields=dict(fields),
                schema_version=schema_version,
            )
        )
        self._check_fits(tx, len(body))
        tx.rows.append((tx.next_seq, op_id, body))
        tx.next_seq += 1
        tx.last_hlc = stamp
        tx.count += 1
        tx.size += len(body)
        tx.op_ids.append(op_id)
        return op_id

    def pull_back(self, stamp: hlc_mod.Hlc) -> None:
        """Set the last HLC to ``stamp`` (clock recovery); kept as the floor in meta."""
        with self._store.write("pull the clock back") as conn:
            write_floor(conn, self.next_seq, stamp)
        self.last_hlc = stamp

    def _insert(self, tx: Tx) -> None:
        """Insert a committing transaction's rows, now that its ``tx_count`` is known."""
        if not tx.rows:
            return
        exact = b'"tx_count":%d,' % len(tx.rows)
        now = self._clock()
        rows = []
        for seq, op_id, body in tx.rows:
            final = _with_count(body, self._widest, exact)
            rows.append((seq, op_id, tx.tx_id, _PENDING, len(final), final, 0, now, now))
        with self._store.guard("record"):
            tx.dbapi.executemany(tables.INSERT_SQL, rows)

    def _check_size(self, size: int) -> None:
        budget = self._config.max_batch_bytes - self._overhead
        if size + 1 > budget:
            raise EntryInvalid(
                "entry_too_large", None, f"entry is {size} bytes encoded; at most {budget - 1}"
            )

    def _check_fits(self, tx: Tx, size: int) -> None:
        self._check_size(size)
        budget = self._config.max_batch_bytes - self._overhead
        if tx.count + 1 > self._config.max_entries:
            raise EntryInvalid(
                "transaction_too_large",
                None,
                f"a transaction holds at most {self._config.max_entries} entries",
            )
        if tx.size + tx.count + size + 1 > budget:
            raise EntryInvalid(
                "transaction_too_large", None, f"a transaction takes at most {budget} bytes"
            )


def write_floor(conn: Connection, next_seq: int, last_hlc: hlc_mod.Hlc) -> None:
    """Keep the next seq and last HLC in meta: before deleting rows, or pulling the HLC back."""
    put_meta(conn, tables.FLOOR_KEY, f"{next_seq} {last_hlc}")


def _derive(conn: Connection, device_id: str) -> tuple[int, hlc_mod.Hlc]:
    """The next seq and last HLC, from the last row and the floor (see the module doc)."""
    last = conn.exec_driver_sql("SELECT seq, body FROM entries ORDER BY seq DESC LIMIT 1").first()
    next_seq, stamp = 1, hlc_mod.zero(device_id)
    if last is not None:
        next_seq, stamp = last.seq + 1, hlc_mod.parse(decode_entry(last.body).hlc)
    floor = meta_value(conn, tables.FLOOR_KEY)
    if floor is not None:
        seq_text, _, hlc_text = floor.partition(" ")
        if int(seq_text) >= next_seq:
            next_seq, stamp = int(seq_text), hlc_mod.parse(hlc_text)
    return next_seq, stamp


def _with_count(body: bytes, widest: bytes, exact: bytes) -> bytes:
    """``body`` with its top-level tx_count set: the last occurrence, which follows ``fields``.

    Canonical JSON sorts keys, so the top-level ``"tx_count":N,`` comes after
    ``fields`` (whose own keys might spell the same) and before ``"tx_id"``; inside a
    string a quote is escaped, so it cannot be mistaken for one there.
    """
    if widest == exact:
        return body
    at = body.rindex(widest)
    return body[:at] + exact + body[at + len(widest) :]

"""The device's encrypted store: one SQLCipher file, one connection, one lock.

Theory of operation
-------------------
The store is one SQLCipher file, reached through SQLAlchemy Core on the
``sqlite+pysqlcipher`` dialect, over a single connection guarded by one lock (the
app thread records while the sync thread drains; SQLite serialises writers anyway,
and one connection means one key derivation). The outbox (the queue of entries) is
its first tenant; the device journal and the local read model share it.

Opening (code in _cipher.py). A valid store always opens, and a file that will not
open is never written: not the file, not its -wal (only the -shm, the WAL index, which
holds no data, may be created or rebuilt), and never deleted.

1. Before SQLite sees the path: a missing file or an empty one (what SQLite leaves
   when the first open is killed) becomes a new store for the app, and is
   NotAnOutbox for tools (``device_id=None``), which create nothing. A plain SQLite
   file, a directory, or a size that is not whole 4 KiB pages (a store never has
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
   in-memory temp storage and the checkpoint threshold.
4. The layout is checked (``user_version``, the core tables: a keyed database of
   another app is NotAnOutbox and is not touched), upgraded (_tables.py) or created,
   in one write transaction with the tenant's own ``prepare`` step; only then is the
   file switched to WAL, a no-op after the first time.
5. Any failure to decode the file on the way is diagnosed from each page's own HMAC
   (``cipher_integrity_check`` on the main file, ``immutable=1``; it only names the
   failure, it never decides that a file opens): page 1 verifies, or other pages
   do, means the key is right and the file is DamagedOutbox; no page verifies is
   WrongKey (random whole pages, or a destroyed salt, look exactly the same); not
   whole pages is NotAnOutbox.

The driver's own transaction handling is off (``isolation_level=None``); every
write transaction starts with ``BEGIN IMMEDIATE``, so a read-then-write happens
under the write lock; reads get a plain BEGIN. The record path (``raw_write`` for
a transaction, ``write_one`` for a lone record) issues BEGIN IMMEDIATE and COMMIT
on the DBAPI connection of the same engine itself: one record is one INSERT, and
SQLAlchemy's transaction machinery cost more than the statement (docs/client.md
has the measurement).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import sqlcipher3
from sqlalchemy.engine import Connection

from conflict import hlc as hlc_mod

from . import _tables as tables
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
from .errors import NotAnOutbox, OutboxError

#: Longest device id: its HLC stamp "13 digits-5 digits-<device>" must fit the wire's 64.
MAX_DEVICE_ID_LENGTH = 64 - 20

_GET_META = sa.select(tables.meta_t.c.value).where(tables.meta_t.c.key == sa.bindparam("k"))
_SET_META = (
    tables.meta_t.update()
    .where(tables.meta_t.c.key == sa.bindparam("k"))
    .values(value=sa.bindparam("v"))
)


class Store:
    """The encrypted database of one device; thread-safe (one lock, one connection)."""

    def __init__(
        self,
        path: str | Path,
        key: bytes | str,
        *,
        device_id: str | None,
        busy_timeout_ms: int,
        wal_autocheckpoint: int,
        prepare: Callable[[Connection], None] | None = None,
    ) -> None:
        self.path = str(path)
        self.lock = threading.RLock()
        if device_id is not None:
            check_device_id(device_id)
        password = password_for(key)
        self._busy_timeout_ms = busy_timeout_ms
        self._engine = cipher_engine(self.path, password, busy_timeout_ms, wal_autocheckpoint)
        self._writer = self._engine.execution_options(**{IMMEDIATE: True})
        quoted = self._engine.dialect.identifier_preparer.quote_identifier(password)
        check_file(self.path, quoted, create=device_id is not None)
        try:
            self.device_id = self._open(quoted, device_id, prepare)
        except (sa.exc.SQLAlchemyError, sqlcipher3.Error) as exc:
            self._engine.dispose()  # closed before diagnosing: it holds no lock then
            raise opening_error(exc, self.path, quoted) from exc
        except BaseException:
            self._engine.dispose()
            raise
        # The same one connection (StaticPool), held for the record path's raw transactions.
        self._dbapi: Any = self._engine.raw_connection().driver_connection

    def close(self) -> None:
        """Close the connection; the file stays as the last commit left it."""
        with self.lock:
            self._engine.dispose()

    @contextmanager
    def read(self, what: str) -> Iterator[Connection]:
        """A read transaction (a snapshot), under the lock."""
        with self.lock, self.guard(what), self._engine.connect() as conn:
            yield conn

    @contextmanager
    def write(self, what: str) -> Iterator[Connection]:
        """A write transaction (BEGIN IMMEDIATE) under the lock: commit on exit, else roll back."""
        with self.lock, self.guard(what), self._writer.begin() as conn:
            yield conn

    @contextmanager
    def raw_write(self, what: str) -> Iterator[Any]:
        """A write transaction on the DBAPI connection itself (the record path, measured
        faster than SQLAlchemy's; docs/client.md): commit on exit, else roll back."""
        with self.lock, self.guard(what):
            conn = self._dbapi
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def write_one(self, sql: str, params: tuple[Any, ...], what: str) -> None:
        """One statement as its own write transaction on the DBAPI connection (a lone
        ``record()``: no context manager, no SQLAlchemy; docs/client.md)."""
        conn = self._dbapi
        with self.lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.execute(sql, params)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlcipher3.Error as exc:
                raise translate(exc, self.path, what) from exc

    def get_meta(self, key: str) -> str | None:
        """A meta value, or None."""
        with self.read("read meta") as conn:
            return meta_value(conn, key)

    def set_meta(self, key: str, value: str | None) -> None:
        """Set (or with None, remove) a meta value."""
        with self.write("write meta") as conn:
            put_meta(conn, key, value)

    @contextmanager
    def guard(self, what: str) -> Iterator[None]:
        """Translate SQLAlchemy and sqlcipher3 errors into OutboxError (or DamagedOutbox)."""
        try:
            yield
        except sa.exc.SQLAlchemyError as exc:
            raise translate(exc, self.path, what) from exc
        except sqlcipher3.Error as exc:
            raise translate(exc, self.path, what) from exc

    def _open(
        self, quoted: str, device_id: str | None, prepare: Callable[[Connection], None] | None
    ) -> str:
        """Prove the key without writing, then set up or check the layout; the device id."""
        prove_key(self.path, quoted, self._busy_timeout_ms)
        with self._writer.begin() as conn:
            device = self._layout(conn, device_id)
            if prepare is not None:
                prepare(conn)
        use_wal(self._engine)
        return device

    def _layout(self, conn: Connection, device_id: str | None) -> str:
        version = int(conn.exec_driver_sql("pragma user_version").scalar_one())
        if version > tables.LAYOUT:
            raise OutboxError(
                f"{self.path} was written by a newer fieldsync (layout {version})", path=self.path
            )
        names = set(conn.scalars(sa.text("select name from sqlite_master where type = 'table'")))
        if version == 0:
            if names:  # another app's encrypted database, under this very key
                raise NotAnOutbox(self.path, f"it holds other tables: {', '.join(sorted(names))}")
            if device_id is None:
                raise NotAnOutbox(self.path, "it is an empty encrypted database")
            tables.create(conn)
            put_meta(conn, "device_id", device_id)
            return device_id
        if missing := tables.CORE_TABLES - names:
            raise NotAnOutbox(self.path, f"it has no {', '.join(sorted(missing))} table")
        stored = meta_value(conn, "device_id")
        if stored is None:
            raise OutboxError(f"outbox {self.path}: meta 'device_id' is missing", path=self.path)
        if device_id is not None and stored != device_id:
            raise OutboxError(
                f"{self.path} is the outbox of device {stored}, not {device_id}", path=self.path
            )
        if version < tables.LAYOUT:
            tables.upgrade(conn, version)
        return stored


def meta_value(conn: Connection, key: str) -> str | None:
    """A meta value inside the caller's transaction, or None."""
    value: str | None = conn.execute(_GET_META, {"k": key}).scalar()
    return value


def put_meta(conn: Connection, key: str, value: str | None) -> None:
    """Set (None: remove) a meta value inside the caller's transaction."""
    if value is None:
        conn.execute(tables.meta_t.delete().where(tables.meta_t.c.key == key))
    elif conn.execute(_SET_META, {"k": key, "v": value}).rowcount == 0:
        conn.execute(tables.meta_t.insert().values(key=key, value=value))


def check_device_id(device_id: str) -> None:
    """Raise ValueError unless ``device_id`` can be the node of an HLC stamp."""
    if not (0 < len(device_id) <= MAX_DEVICE_ID_LENGTH and hlc_mod.valid_node(device_id)):
        raise ValueError(
            f"device_id must be 1..{MAX_DEVICE_ID_LENGTH} characters of [0-9A-Za-z._:~-]"
        )

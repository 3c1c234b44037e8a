"""Opening a SQLCipher file through SQLAlchemy: keys, the silent wrong-key probe, tuning.

The theory of operation is at the top of _outbox.py; this module holds the parts
that talk to SQLCipher itself.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.request import pathname2url

import sqlalchemy as sa
import sqlcipher3
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.pool import StaticPool

from .errors import OutboxError, WrongKey

#: Execution option marking a write transaction (BEGIN IMMEDIATE).
IMMEDIATE = "fieldsync_immediate"
#: What SQLCipher says when the key does not decrypt page 1.
NOT_A_DATABASE = "file is not a database"


def password_for(key: bytes | str) -> str:
    """The string the dialect passes to ``pragma key``: x'<hex>' for a raw key."""
    if isinstance(key, bytes):
        if len(key) != 32:
            raise ValueError(f"a raw outbox key is 32 bytes, not {len(key)}")
        return f"x'{key.hex()}'"
    if isinstance(key, str):
        if not key:
            raise ValueError("an empty passphrase would leave the outbox unencrypted")
        return key
    raise TypeError(f"key must be 32 bytes or a passphrase str, not {type(key).__name__}")


def probe_key(path: str, quoted_password: str) -> None:
    """Prove the key on the main file alone, if SQLite would otherwise touch sidecars.

    Opened normally, a database with a -wal is replayed through the WAL, and the
    connection's close checkpoints it into the file, even when the key is wrong and
    nothing could be read. ``immutable=1`` reads only the main file, takes no locks
    and writes nothing. Its page 1 is encrypted with the key as soon as the file is
    in WAL mode (switching to WAL writes it), so reading it decides the key.
    """
    sidecars = ("-wal", "-shm", "-journal")
    if not any(os.path.exists(path + s) for s in sidecars) or not os.path.getsize(path):
        return
    uri = f"file:{pathname2url(os.path.abspath(path))}?mode=ro&immutable=1"
    conn = sqlcipher3.connect(uri, uri=True, isolation_level=None)
    try:
        conn.execute("pragma cipher_log_level = NONE")
        conn.execute(f"pragma key = {quoted_password}")
        conn.execute("select count(*) from sqlite_master").fetchall()
    finally:
        conn.close()


def cipher_engine(
    path: str, password: str, busy_timeout_ms: int, wal_autocheckpoint: int = 1_000
) -> Engine:
    """An engine whose one connection is silenced, keyed, verified, then tuned."""

    def creator() -> Any:
        conn = sqlcipher3.connect(path, check_same_thread=False, isolation_level=None)
        # Must precede the dialect's ``pragma key``: silences SQLCipher's stderr log.
        conn.execute("pragma cipher_log_level = NONE")
        return conn

    url = URL.create("sqlite+pysqlcipher", password=password, database=path)
    engine = sa.create_engine(url, creator=creator, poolclass=StaticPool)

    @event.listens_for(engine, "connect")
    def _tune(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("select count(*) from sqlite_master").fetchall()  # proves the key
            cursor.execute("pragma journal_mode = wal").fetchall()
            cursor.execute("pragma synchronous = full")
            cursor.execute(f"pragma busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("pragma temp_store = memory")
            cursor.execute(f"pragma wal_autocheckpoint = {int(wal_autocheckpoint)}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # Writers take the write lock up front; readers get a plain snapshot.
        immediate = conn.get_execution_options().get(IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def translate(exc: BaseException, path: str, what: str) -> OutboxError:
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, sqlcipher3.DatabaseError) and NOT_A_DATABASE in str(orig):
        return WrongKey(path)
    return OutboxError(f"outbox {path}: {what} failed: {orig}", path=path)

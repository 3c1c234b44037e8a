"""Opening a SQLCipher file through SQLAlchemy: keys, proving a key without writing, tuning.

The theory of operation is at the top of _outbox.py ("Opening"); this module holds
the parts that talk to SQLCipher itself.
"""

from __future__ import annotations

import os
import re
import stat
from typing import Any
from urllib.request import pathname2url

import sqlalchemy as sa
import sqlcipher3
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.pool import StaticPool

from .errors import DamagedOutbox, NotAnOutbox, OutboxError, WrongKey

#: Execution option marking a write transaction (BEGIN IMMEDIATE).
IMMEDIATE = "fieldsync_immediate"
#: SQLCipher 4's page size, which every outbox uses.
PAGE_SIZE = 4096
#: How a plain SQLite file starts; an outbox starts with its random salt instead.
PLAIN_SQLITE = b"SQLite format 3\x00"
#: Files SQLite keeps beside a database. With any of them present a normal connection
#: could replay, roll back or checkpoint something, so the key is proven read-only first.
SIDECARS = ("-wal", "-shm", "-journal")
#: SQLite errors meaning the bytes did not decode: wrong key, damage, or not an outbox.
UNREADABLE = ("SQLITE_NOTADB", "SQLITE_CORRUPT")
_PAGE_NO = re.compile(r"\bpage ([0-9]{1,10})\b", re.ASCII)


def password_for(key: bytes | str) -> str:
    """The string the dialect passes to ``pragma key``: x'<hex>' for a raw key."""
    if isinstance(key, bytes):
        if len(key) != 32:
            raise ValueError(f"a raw outbox key is 32 bytes, not {len(key)}")
        return f"x'{key.hex()}'"
    if isinstance(key, str):
        if not key:
            raise ValueError("an empty passphrase would leave the outbox unencrypted")
        if "\x00" in key:
            raise ValueError("a passphrase cannot hold the NUL character")
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("a passphrase must be valid Unicode (no lone surrogates)") from None
        return key
    raise TypeError(f"key must be 32 bytes or a passphrase str, not {type(key).__name__}")


def check_file(path: str, quoted: str, *, create: bool) -> None:
    """Refuse, before SQLite opens it, a path that is no outbox and may not become one."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if not create:
            raise NotAnOutbox(path, "there is no such file") from None
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise OutboxError(
                f"cannot create the outbox {path}: no folder {folder}", path=path
            ) from None
        return
    if not stat.S_ISREG(st.st_mode):
        raise NotAnOutbox(path, "it is not a regular file")
    if _head(path) == PLAIN_SQLITE:
        raise NotAnOutbox(path, "it is a plain, unencrypted SQLite database")
    if st.st_size == 0:
        if _size(path + "-wal"):
            raise DamagedOutbox(path, "the file is empty but its -wal is not")
        if not create:
            raise NotAnOutbox(path, "the file is empty")
        # What SQLite leaves when the very first open is killed: it becomes a new outbox.
    elif st.st_size % PAGE_SIZE:
        # Never an outbox's size; SQLite would take a file under 16 bytes for a new one.
        raise diagnose(path, quoted, f"its {st.st_size} bytes are not a whole number of pages")


def prove_key(path: str, quoted: str, busy_timeout_ms: int) -> None:
    """Prove the key read-only, through the -wal, before a normal connection may write.

    A normal connection replays a -wal, rolls back a hot -journal, and checkpoints on
    close, even when the key is wrong. This one opens the file ``mode=ro`` (its file
    descriptor cannot write, so it can neither checkpoint nor roll back) but, unlike
    ``immutable=1``, reads the -wal: after a kill mid-checkpoint the main file alone
    is not consistent. It may create or rebuild the -shm (the WAL index, no data).
    """
    if not _size(path) or not any(os.path.exists(path + s) for s in SIDECARS):
        return  # nothing a wrong key could replay: the writable connection proves it
    try:
        _query(path, "mode=ro", quoted, busy_timeout_ms, "select count(*) from sqlite_master")
    except sqlcipher3.OperationalError as exc:
        # A hot -journal (an outbox leaves one only if killed while being created, before
        # it switched to WAL) cannot be rolled back read-only: page 1's HMAC decides.
        readonly = _name(exc).startswith("SQLITE_READONLY")
        if not (readonly and os.path.exists(path + "-journal")):
            raise
        if 1 in _hmac_failures(path, quoted):
            raise diagnose(path, quoted, exc) from exc


def opening_error(exc: BaseException, path: str, quoted: str) -> OutboxError:
    """The error for a failed open: diagnosed when SQLite could not decode the file."""
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, sqlcipher3.DatabaseError) and _name(orig).startswith(UNREADABLE):
        return diagnose(path, quoted, orig)
    return translate(exc, path, "open")


def diagnose(path: str, quoted: str, cause: object) -> OutboxError:
    """Why a file SQLite could not decode will not open: damaged, wrong key, or no outbox.

    Every page of a SQLCipher file carries its own HMAC, checked here page by page on
    the main file alone (``immutable=1``, nothing else touched): any page that
    verifies proves the key, since a wrong key (or a random file) verifies none.
    This only classifies a failure; it never decides that a file opens.
    """
    try:
        size = os.path.getsize(path)
        bad = _hmac_failures(path, quoted) if size >= PAGE_SIZE else {1}
    except (OSError, sqlcipher3.Error) as exc:
        return OutboxError(
            f"outbox {path}: open failed: {cause} (and checking it: {exc})", path=path
        )
    pages = -(-size // PAGE_SIZE)
    good = pages - len(bad)
    if 1 not in bad:
        return DamagedOutbox(path, f"{cause}; page 1 decrypts with this key, so the key is right")
    if good > 0:
        return DamagedOutbox(
            path, f"page 1 does not decrypt, but {good} of {pages} pages do with this key"
        )
    if size % PAGE_SIZE:
        return NotAnOutbox(path, f"{size} bytes is not a whole number of {PAGE_SIZE}-byte pages")
    return WrongKey(path)


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


def use_wal(engine: Engine) -> None:
    """Switch to WAL (a no-op once done): only after the file is known to be an outbox."""
    conn = engine.raw_connection()
    try:
        cursor = conn.cursor()
        cursor.execute("pragma journal_mode = wal")
        cursor.fetchall()
        cursor.close()
    finally:
        conn.close()


def translate(exc: BaseException, path: str, what: str) -> OutboxError:
    """An OutboxError for a SQLAlchemy or sqlcipher3 error met after the key was proven."""
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, sqlcipher3.DatabaseError) and _name(orig).startswith(UNREADABLE):
        return DamagedOutbox(path, f"{what} failed: {orig}")
    return OutboxError(f"outbox {path}: {what} failed: {orig}", path=path)


def _hmac_failures(path: str, quoted: str) -> set[int]:
    """Pages of the main file whose HMAC does not verify with this key (a partial one too)."""
    rows = _query(path, "mode=ro&immutable=1", quoted, 0, "pragma cipher_integrity_check")
    bad = set()
    for (line,) in rows:
        found = _PAGE_NO.search(str(line))
        if found is None:
            raise OutboxError(f"outbox {path}: cipher_integrity_check says {line!r}", path=path)
        bad.add(int(found.group(1)))
    return bad


def _query(path: str, mode: str, quoted: str, busy_timeout_ms: int, sql: str) -> list[Any]:
    """Run one statement on a short-lived, silenced, keyed connection opened with ``mode``."""
    uri = f"file:{pathname2url(os.path.abspath(path))}?{mode}"
    conn = sqlcipher3.connect(uri, uri=True, isolation_level=None)
    try:
        conn.execute("pragma cipher_log_level = NONE")
        conn.execute(f"pragma key = {quoted}")
        conn.execute(f"pragma busy_timeout = {int(busy_timeout_ms)}")
        rows: list[Any] = conn.execute(sql).fetchall()
        return rows
    finally:
        conn.close()


def _head(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(len(PLAIN_SQLITE))
    except OSError as exc:
        raise OutboxError(f"cannot read the outbox {path}: {exc.strerror}", path=path) from exc


def _name(exc: BaseException) -> str:
    return str(getattr(exc, "sqlite_errorname", "") or "")


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0

"""Engines and schema migrations: SQLite tuned for one embedded process, or PostgreSQL."""

from __future__ import annotations

import importlib.util
import re
import shlex
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.dialects import postgresql, sqlite

MIGRATIONS = Path(__file__).with_name("migrations")

#: Execution option for a transaction that only reads (SQLite: plain BEGIN, no lock).
READ_ONLY = "fieldsync_read_only"

#: Milliseconds a SQLite writer waits for another writer's lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 10_000


#: PostgreSQL's answer when the database named in the URL does not exist.
_MISSING_DATABASE = re.compile(r'database "([^"]{1,200})" does not exist')


def create_engine(url: str | sa.URL, **kwargs: Any) -> sa.Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout, foreign keys, BEGIN IMMEDIATE;
    on PostgreSQL (psycopg) only writes are prepared (``_tune_psycopg``)."""
    engine = sa.create_engine(check_url(url), **kwargs)
    if engine.dialect.name == "sqlite":
        _tune_sqlite(engine)
    elif engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg":
        _tune_psycopg(engine)
    return engine


def check_url(url: str | sa.URL) -> sa.URL:
    """``url`` parsed; ValueError naming the fix for URLs that would fail obscurely later."""
    parsed = sa.make_url(url)
    driver = parsed.drivername
    if driver == "postgres" or driver.startswith("postgres+"):
        raise ValueError(
            f"{driver}:// is not a SQLAlchemy URL scheme: "
            "use postgresql+psycopg://USER@HOST/DATABASE"
        )
    if driver == "postgresql" and importlib.util.find_spec("psycopg2") is None:
        raise ValueError(
            "postgresql:// means the psycopg2 driver, which is not installed: "
            "use postgresql+psycopg://USER@HOST/DATABASE"
        )
    return parsed


def explain(exc: BaseException, url: str | sa.URL | None = None) -> str | None:
    """A message naming the fix for a known failure to open the database, else None."""
    parsed = None if url is None else sa.make_url(url)
    if parsed is not None and parsed.get_backend_name() == "sqlite":
        return _missing_sqlite_folder(parsed) if "unable to open" in str(exc) else None
    found = _MISSING_DATABASE.search(str(exc))
    if found is None:
        return None
    name = found.group(1)
    where = "" if parsed is None else f" on {parsed.host or 'localhost'}:{parsed.port or 5432}"
    return (
        f'PostgreSQL database "{name}" does not exist{where}: create it with '
        f"`createdb {shlex.quote(name)}`, then run `fieldsync-server db upgrade`"
    )


@contextmanager
def explained(url: str | sa.URL | None = None) -> Iterator[None]:
    """Turn a known start-up failure (see ``explain``) into a ValueError that names the fix."""
    try:
        yield
    except sa.exc.OperationalError as exc:
        message = explain(exc, url)
        if message is None:
            raise
        raise ValueError(message) from exc


@contextmanager
def transaction(conn: sa.Connection, *, read_only: bool = False) -> Iterator[None]:
    """A transaction on ``conn``, committed at the end; ``read_only``: no lock on SQLite."""
    conn.execution_options(**{READ_ONLY: read_only})
    try:
        with conn.begin():
            yield
    finally:
        conn.execution_options(**{READ_ONLY: False})


def check_connection(engine: sa.Engine) -> None:
    """Connect once (``SELECT 1``); a missing database becomes a ValueError naming the fix."""
    with explained(engine.url), engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")


def upsert_into(conn: sa.Connection, table: sa.Table) -> sqlite.Insert | postgresql.Insert:
    """An INSERT with ON CONFLICT support in ``conn``'s dialect (SQLite or PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def fetch_all(conn: sa.Connection, sql: str, params: Sequence[Any]) -> list[Any]:
    """The rows of a read in ``conn``'s transaction, straight from the driver's cursor.

    ``sql`` is in the driver's parameter style. For hot reads of many rows: SQLAlchemy's
    result objects cost more per row than the read (errors are the driver's own).
    """
    cursor: Any = conn.connection.cursor()  # psycopg's takes ``prepare``
    try:
        if conn.dialect.name == "postgresql":
            cursor.execute(sql, params, prepare=False)  # reads are never prepared (above)
        else:
            cursor.execute(sql, params)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at the migrations shipped inside this package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Migrate the database to ``revision`` in one transaction (safe to run concurrently)."""
    config = alembic_config()
    # One transaction around the whole upgrade: on SQLite it begins IMMEDIATE, so
    # processes starting together run it one after the other; on PostgreSQL the
    # DDL is transactional, so a failed upgrade leaves nothing half-done.
    with explained(engine.url), engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def current_revision(engine: sa.Engine) -> str | None:
    """The revision the database is at (None before the first upgrade)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    """The newest revision this package ships."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _missing_sqlite_folder(url: sa.URL) -> str | None:
    """SQLite says only "unable to open database file"; name the folder that is missing."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    folder = Path(database).absolute().parent
    if folder.is_dir():
        return None
    return f"SQLite database {database}: folder {folder} does not exist (create it first)"


def _enable_wal(cursor: Any) -> None:
    """Switch to WAL, waiting out processes that switch the same new file at once.

    The switch needs an exclusive lock, and SQLite answers "database is locked" at
    once, without its busy handler, when two connections would deadlock on it.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _tune_psycopg(engine: sa.Engine) -> None:
    import psycopg

    @sa.event.listens_for(engine, "do_execute")
    def _on_execute(cursor: Any, statement: str, parameters: Any, context: Any) -> bool | None:
        # psycopg prepares a statement after five executions, and PostgreSQL may then
        # plan it once for any parameters. For the op-log lookup of a batch (``op_id
        # IN ($2 … $501)``) on a table without statistics yet, that generic plan
        # filters every op of the device against an array it rebuilds per row (0.2-1 s
        # per batch at 5-10 k ops; docs/performance.md): reads are planned for their
        # values instead (a hashed list). Writes stay prepared (executemany rows above
        # all), where a generic plan is right and planning each row would cost.
        write = context is not None and (context.is_crud or _is_write(statement))
        if context is None or write or isinstance(cursor, psycopg.ServerCursor):
            return None  # a write, or a server-side cursor (never prepared)
        cursor.execute(statement, parameters, prepare=False)
        return True


def _is_write(statement: str) -> bool:
    """Whether driver-level SQL (no compiled statement to ask) writes rows."""
    return statement.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE")


def _tune_sqlite(engine: sa.Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module (its legacy mode
        # skips BEGIN before SELECT and SAVEPOINT); _on_begin issues it instead.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            _enable_wal(cursor)
            cursor.execute("PRAGMA foreign_keys=ON")
            # FULL: an acknowledged batch survives a power cut; the client deletes
            # its copy on our answer, so durability is not negotiable here.
            cursor.execute("PRAGMA synchronous=FULL")
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # IMMEDIATE takes the write lock up front, so a read-then-write transaction
        # never fails half-way with SQLITE_BUSY when another writer got in first.
        # A transaction marked READ_ONLY only reads, and takes no lock at all.
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

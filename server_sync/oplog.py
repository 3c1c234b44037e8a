"""The op log's statements, sent to the driver as written, in its parameter style.

SQLAlchemy's per-row parameter processing of the op log's 15 columns cost more than
the insert itself, so rows go to the driver as tuples in COLUMNS order. On SQLite
they go in one executemany; on PostgreSQL in one ``INSERT … SELECT FROM unnest(…)``
of one array per column (one statement, not one per row), the arrays sent in binary
(``%b``: psycopg's text-format array dumper escapes each element with a regex, which
cost more than the statement). A duplicate (device_id, op_id) raises IntegrityError.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

import sqlalchemy as sa

from .db import fetch_all
from .models import ops

#: The op log's columns as rows are given to ``insert`` (``received_at`` last).
COLUMNS = (
    "device_id",
    "op_id",
    "seq",
    "tx_id",
    "batch_id",
    "collection",
    "record_id",
    "kind",
    "hlc",
    "schema_version",
    "fields_json",
    "digest",
    "status",
    "result_json",
    "received_at",
)
OP_ID = COLUMNS.index("op_id")

#: PostgreSQL array types of the columns before ``received_at`` (one value for all).
_PG_ARRAYS = ("text",) * 2 + ("int8",) + ("text",) * 6 + ("int4",) + ("text",) * 4


def insert(conn: sa.Connection, rows: Sequence[tuple[Any, ...]], received_at: datetime) -> None:
    """Insert ``rows`` (tuples in COLUMNS order, without ``received_at``) in one statement."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        arrays = [list(column) for column in zip(*rows, strict=True)]
        conn.exec_driver_sql(_pg_insert(), (received_at, *arrays))  # as the marks stand
    else:
        bound = _bound(conn.dialect, ops.c.received_at, received_at)
        conn.exec_driver_sql(_sqlite_insert(), [(*row, bound) for row in rows])


def load(conn: sa.Connection, device_id: str, op_ids: Sequence[str]) -> list[tuple[str, str, str]]:
    """(op_id, digest, result_json) of each of ``op_ids`` the log holds for ``device_id``."""
    if not op_ids:
        return []
    if conn.dialect.name == "postgresql":
        sql = f"{_LOAD} device_id = %s AND op_id = ANY(%b::text[])"
        rows = fetch_all(conn, sql, (device_id, list(op_ids)))
    else:
        sql = f"{_LOAD} device_id = ? AND op_id IN ({', '.join('?' * len(op_ids))})"
        rows = fetch_all(conn, sql, (device_id, *op_ids))
    return [(op_id, digest, result) for op_id, digest, result in rows]


_LOAD = f"SELECT op_id, digest, result_json FROM {ops.name} WHERE"


@cache
def _sqlite_insert() -> str:
    marks = ", ".join("?" * len(COLUMNS))
    return f"INSERT INTO {ops.name} ({', '.join(COLUMNS)}) VALUES ({marks})"


@cache
def _pg_insert() -> str:
    arrays = ", ".join(f"%b::{kind}[]" for kind in _PG_ARRAYS)
    names = ", ".join(COLUMNS[:-1])
    return (
        f"INSERT INTO {ops.name} ({', '.join(COLUMNS)}) "
        f"SELECT {names}, %s FROM unnest({arrays}) AS t({names})"
    )


def _bound(dialect: sa.Dialect, column: sa.Column[Any], value: Any) -> Any:
    """``value`` as ``column``'s type hands it to the driver (SQLite: a datetime as text)."""
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    return value if process is None else process(value)

"""Current record state: one row per record, its document and per-field clocks.

Theory of operation. ``records`` holds, per (collection, record_id), the document
(``{field: value}``, canonical JSON) and each field's stamp (``{field: [wall_ms,
counter, node]}``). An applied entry's fields are merged in with a policy from
``conflict.merge`` (last writer wins by HLC today), so the state depends only on the
set of entries seen, never on their order. A delete writes the tombstone field
``__deleted__`` = true; an upsert or patch writes it false, at the entry's stamp.

A batch's changes are written read-merge-write, so the rows must stay locked between
the read and the write, or a concurrent apply could overwrite a merge it never saw:
on SQLite the apply transaction already holds the database's write lock (``BEGIN
IMMEDIATE``, see db.py); on PostgreSQL the missing rows are first inserted empty
(``ON CONFLICT DO NOTHING``, waiting for a concurrent inserter to commit), then every
row is read ``FOR UPDATE``; both in key order, so concurrent appliers never deadlock.
The merged rows go back in one executemany; unchanged rows are not written. The
statements go to the driver as written (SQLAlchemy's per-row processing cost more
than the statements).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import sqlalchemy as sa

from conflict import Hlc, Policy, Write, last_writer_wins
from protocol import canonical_json
from protocol.codec import load_json

from .db import fetch_all
from .models import records

#: The field a delete sets to true and an upsert or patch sets to false.
DELETED = "__deleted__"

#: (collection, record_id)
Key = tuple[str, str]
#: A record as stored: its document ({field: value}) and clocks ({field: [wall_ms,
#: counter, node]}).
Stored = tuple[dict[str, Any], dict[str, list[Any]]]


#: One applied entry's writes: its stamp and {field: value}, the tombstone flag included.
Writes = tuple[Hlc, dict[str, Any]]


class Changes:
    """The field writes of a batch's applied entries, gathered by record."""

    __slots__ = ("by_record",)

    def __init__(self) -> None:
        self.by_record: dict[Key, list[Writes]] = {}

    def add(self, key: Key, kind: str, stamp: Hlc, values: Mapping[str, Any]) -> None:
        """Add one applied entry: its fields (none for a delete) and the tombstone flag."""
        written = {DELETED: True} if kind == "delete" else {**values, DELETED: False}
        self.by_record.setdefault(key, []).append((stamp, written))


def get_record(conn: sa.Connection, collection: str, record_id: str) -> dict[str, Any] | None:
    """A record's current field values, or None if it is absent or deleted."""
    doc_json = conn.execute(
        sa.select(records.c.doc_json).where(
            records.c.collection == collection, records.c.record_id == record_id
        )
    ).scalar()
    values: dict[str, Any] = json.loads(doc_json) if doc_json else {}
    if not values or values.pop(DELETED, False):
        return None
    return values


def write(conn: sa.Connection, changes: Changes, policy: Policy = last_writer_wins) -> None:
    """Merge ``changes`` into the stored records under lock (one statement per step)."""
    keys = sorted(changes.by_record)
    if not keys:
        return
    sql = _sql(conn.dialect)
    if sql.postgres:
        collections, ids = (list(column) for column in zip(*keys, strict=True))
        conn.exec_driver_sql(sql.insert_missing, (collections, ids))
    current = _lock(conn, sql, keys)
    rows: list[tuple[str, str, str, str]] = []
    for key in keys:
        doc, clocks = current.get(key) or ({}, {})
        if merge_stored(doc, clocks, changes.by_record[key], policy):
            rows.append(
                (
                    key[0],
                    key[1],
                    canonical_json(doc).decode(),
                    # Stamps are ints and strings (parsed, or read back from here).
                    canonical_json(clocks, floats=False).decode(),
                )
            )
    if rows and sql.postgres:
        conn.exec_driver_sql(sql.upsert, tuple(list(column) for column in zip(*rows, strict=True)))
    elif rows:
        conn.exec_driver_sql(sql.upsert, rows)


def merge_stored(
    doc: dict[str, Any],
    clocks: dict[str, list[Any]],
    incoming: Iterable[Writes],
    policy: Policy = last_writer_wins,
) -> bool:
    """``merge_fields`` on a record's stored form, in place: ``doc`` ({field: value}) and
    ``clocks`` ({field: [wall_ms, counter, node]}); whether either changed.

    A Write is built only when the policy must see one: last writer wins compares the
    stamps as they are stored, and asks the policy only when they are equal.
    """
    changed = False
    lww = policy is last_writer_wins
    for hlc, values in incoming:
        # last_writer_wins's order: (wall_ms, counter, node), compared as numbers.
        ordered = (hlc.wall_ms, hlc.counter, hlc.node)
        clock = list(ordered)
        for field, value in values.items():
            stamp = clocks.get(field)
            if stamp is not None:
                if lww and stamp != clock:
                    if ordered < tuple(stamp):
                        continue
                else:
                    current = Write(Hlc(*stamp), doc[field])
                    winner = policy(current, Write(hlc, value)).winner
                    if winner is current:
                        continue
                    doc[field] = winner.value
                    clocks[field] = [winner.hlc.wall_ms, winner.hlc.counter, winner.hlc.node]
                    changed = True
                    continue
            doc[field] = value
            clocks[field] = clock
            changed = True
    return changed


@dataclass(frozen=True, slots=True)
class _Sql:
    """The statements write() sends to the driver as written, in its parameter style."""

    postgres: bool
    insert_missing: str
    select: str
    upsert: str


@cache
def _sql(dialect: sa.Dialect) -> _Sql:
    """SQLite: executemany of one row per record; PostgreSQL: one statement over arrays."""
    table = records.name
    columns = "collection, record_id, doc_json, clocks_json"
    update = (
        "ON CONFLICT (collection, record_id) DO UPDATE SET "
        "doc_json = excluded.doc_json, clocks_json = excluded.clocks_json"
    )
    if dialect.name != "postgresql":
        return _Sql(
            postgres=False,
            insert_missing="",
            select=f"SELECT record_id, doc_json, clocks_json FROM {table} "
            "WHERE collection = ? AND record_id IN ({ids})",
            upsert=f"INSERT INTO {table} ({columns}) VALUES (?, ?, ?, ?) {update}",
        )
    return _Sql(
        postgres=True,
        # Inserted in key order (the arrays' order), as the rows are then locked.
        insert_missing=f"INSERT INTO {table} ({columns}) "
        "SELECT c, r, '{}', '{}' FROM unnest(%b::text[], %b::text[]) "
        "WITH ORDINALITY AS t(c, r, n) ORDER BY n "
        "ON CONFLICT (collection, record_id) DO NOTHING",
        select=f"SELECT record_id, doc_json, clocks_json FROM {table} "
        "WHERE collection = %s AND record_id = ANY(%b::text[]) ORDER BY record_id FOR UPDATE",
        upsert=f"INSERT INTO {table} ({columns}) "
        "SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[]) "
        f"{update}",
    )


def _lock(conn: sa.Connection, sql: _Sql, keys: list[Key]) -> dict[Key, Stored]:
    """The stored state of ``keys``, rows locked in key order (FOR UPDATE on PostgreSQL)."""
    by_collection: dict[str, list[str]] = {}
    for collection, record_id in keys:
        by_collection.setdefault(collection, []).append(record_id)
    out: dict[Key, Stored] = {}
    for collection, ids in by_collection.items():
        if sql.postgres:
            rows = fetch_all(conn, sql.select, (collection, ids))
        else:
            marks = ", ".join("?" * len(ids))
            rows = fetch_all(conn, sql.select.format(ids=marks), (collection, *ids))
        for record_id, doc_json, clocks_json in rows:
            out[(collection, record_id)] = _state(doc_json, clocks_json)
    return out


def _state(doc_json: str, clocks_json: str) -> Stored:
    return load_json(doc_json), load_json(clocks_json)

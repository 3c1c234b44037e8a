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
The merged rows go back in one executemany; unchanged rows are not written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from conflict import Hlc, Policy, Write, last_writer_wins
from protocol import canonical_json
from protocol.codec import load_json

from .db import upsert_into
from .models import records

#: The field a delete sets to true and an upsert or patch sets to false.
DELETED = "__deleted__"

#: (collection, record_id)
Key = tuple[str, str]
#: A record as stored: its document ({field: value}) and clocks ({field: [wall_ms,
#: counter, node]}).
Stored = tuple[dict[str, Any], dict[str, list[Any]]]


class Changes:
    """The field writes of a batch's applied entries, gathered by record."""

    __slots__ = ("by_record",)

    def __init__(self) -> None:
        self.by_record: dict[Key, list[tuple[str, Write]]] = {}

    def add(self, key: Key, kind: str, stamp: Hlc, values: Mapping[str, Any]) -> None:
        """Add one applied entry: its fields (none for a delete) and the tombstone flag."""
        writes = self.by_record.setdefault(key, [])
        if kind != "delete":
            writes.extend((field, Write(stamp, value)) for field, value in values.items())
        writes.append((DELETED, Write(stamp, kind == "delete")))


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


def write(
    conn: sa.Connection, changes: Changes, policy: Policy = last_writer_wins
) -> list[tuple[Key, str, Write]]:
    """Merge ``changes`` into the stored records under lock; return what lost, per field."""
    keys = sorted(changes.by_record)
    if not keys:
        return []
    if conn.dialect.name == "postgresql":
        _insert_missing(conn, keys)
    current = _lock(conn, keys)
    rows: list[tuple[str, str, str, str]] = []
    lost: list[tuple[Key, str, Write]] = []
    for key in keys:
        doc, clocks = current.get(key) or ({}, {})
        changed, losers = merge_stored(doc, clocks, changes.by_record[key], policy)
        lost.extend((key, field, loser) for field, loser in losers)
        if changed:
            rows.append(
                (key[0], key[1], canonical_json(doc).decode(), canonical_json(clocks).decode())
            )
    if rows:
        stmt = upsert_into(conn, records)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[records.c.collection, records.c.record_id],
                set_={"doc_json": stmt.excluded.doc_json, "clocks_json": stmt.excluded.clocks_json},
            ),
            [dict(zip(_COLUMNS, row, strict=True)) for row in rows],
        )
    return lost


_COLUMNS = ("collection", "record_id", "doc_json", "clocks_json")


def merge_stored(
    doc: dict[str, Any],
    clocks: dict[str, list[Any]],
    incoming: Iterable[tuple[str, Write]],
    policy: Policy = last_writer_wins,
) -> tuple[bool, list[tuple[str, Write]]]:
    """``merge_fields`` on a record's stored form, in place: ``doc`` ({field: value}) and
    ``clocks`` ({field: [wall_ms, counter, node]}). Returns whether either changed and
    the (field, loser) pairs. A stored field's Write is built only when a write meets it.
    """
    changed = False
    lost: list[tuple[str, Write]] = []
    for field, write in incoming:
        stamp = clocks.get(field)
        winner = write
        if stamp is not None:
            current = Write(Hlc(*stamp), doc[field])
            outcome = policy(current, write)
            if outcome.loser is not None:
                lost.append((field, outcome.loser))
            if outcome.winner is current:
                continue
            winner = outcome.winner
        doc[field] = winner.value
        clocks[field] = [winner.hlc.wall_ms, winner.hlc.counter, winner.hlc.node]
        changed = True
    return changed, lost


def _insert_missing(conn: sa.Connection, keys: Iterable[Key]) -> None:
    """Give every key a row to lock: empty where none exists (PostgreSQL, key order)."""
    stmt = upsert_into(conn, records).on_conflict_do_nothing(
        index_elements=[records.c.collection, records.c.record_id]
    )
    conn.execute(
        stmt,
        [{"collection": c, "record_id": r, "doc_json": "{}", "clocks_json": "{}"} for c, r in keys],
    )


def _lock(conn: sa.Connection, keys: list[Key]) -> dict[Key, Stored]:
    """The stored state of ``keys``, rows locked in key order (FOR UPDATE on PostgreSQL)."""
    by_collection: dict[str, list[str]] = {}
    for collection, record_id in keys:
        by_collection.setdefault(collection, []).append(record_id)
    c = records.c
    out: dict[Key, Stored] = {}
    for collection, ids in by_collection.items():
        stmt = (
            sa.select(c.record_id, c.doc_json, c.clocks_json)
            .where(c.collection == collection, c.record_id.in_(ids))
            .order_by(c.record_id)
            .with_for_update()
        )
        for record_id, doc_json, clocks_json in conn.execute(stmt):
            out[(collection, record_id)] = _state(doc_json, clocks_json)
    return out


def _state(doc_json: str, clocks_json: str) -> Stored:
    return load_json(doc_json), load_json(clocks_json)

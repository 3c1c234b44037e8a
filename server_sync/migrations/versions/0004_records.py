"""Record state as one row per record: the document and its per-field clocks.

``record_fields`` (one row per field) becomes ``records`` (one row per record, the
document as canonical JSON and each field's stamp as [wall_ms, counter, node]), which
applies a batch with one row read and written per record instead of one per field.
Existing rows are carried over record by record, streamed in key order; the
downgrade spreads them back out.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_CHUNK = 1000
#: Read the old table in chunks (a server-side cursor on PostgreSQL), not all at once.
_STREAM = {"stream_results": True, "yield_per": _CHUNK}
_FIELD_COLUMNS = ("value_json", "hlc", "hlc_wall_ms", "hlc_counter", "hlc_node")


def _ordered(length: int | None = None) -> sa.types.TypeEngine[str]:
    """Byte-ordered text on PostgreSQL too (frozen copy of models.ordered_text)."""
    if length is None:
        return sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def _canonical(value: Any) -> str:
    """Canonical JSON (frozen copy of protocol.canonical_json's rule)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_records = sa.table(
    "records", *(sa.column(c) for c in ("collection", "record_id", "doc_json", "clocks_json"))
)
_fields = sa.table(
    "record_fields", *(sa.column(c) for c in ("collection", "record_id", "field", *_FIELD_COLUMNS))
)


def upgrade() -> None:
    """Create records, fill it from record_fields, drop record_fields."""
    op.create_table(
        "records",
        sa.Column("collection", _ordered(128), nullable=False),
        sa.Column("record_id", _ordered(128), nullable=False),
        sa.Column("doc_json", sa.Text(), nullable=False),
        sa.Column("clocks_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("collection", "record_id", name="pk_records"),
    )
    conn = op.get_bind()
    for chunk in _chunks(_merged_rows(conn)):
        conn.execute(_records.insert(), chunk)
    op.drop_table("record_fields")


def downgrade() -> None:
    """Recreate record_fields (as at 0003) and spread each record back into field rows."""
    op.create_table(
        "record_fields",
        sa.Column("collection", sa.String(128), nullable=False),
        sa.Column("record_id", sa.String(128), nullable=False),
        sa.Column("field", sa.String(128), nullable=False),
        sa.Column("value_json", _ordered(), nullable=False),
        sa.Column("hlc", _ordered(64), nullable=False),
        sa.Column("hlc_wall_ms", sa.BigInteger(), nullable=False),
        sa.Column("hlc_counter", sa.Integer(), nullable=False),
        sa.Column("hlc_node", _ordered(64), nullable=False),
        sa.PrimaryKeyConstraint("collection", "record_id", "field", name="pk_record_fields"),
    )
    conn = op.get_bind()
    for chunk in _chunks(_field_rows(conn)):
        conn.execute(_fields.insert(), chunk)
    op.drop_table("records")


def _merged_rows(conn: sa.Connection) -> Iterator[dict[str, str]]:
    c = _fields.c
    rows = conn.execute(
        sa.select(c.collection, c.record_id, c.field, c.value_json, c.hlc_wall_ms)
        .add_columns(c.hlc_counter, c.hlc_node)
        .order_by(c.collection, c.record_id),
        execution_options=_STREAM,
    )
    for (collection, record_id), group in itertools.groupby(rows, key=lambda r: r[:2]):
        doc: dict[str, Any] = {}
        clocks: dict[str, list[Any]] = {}
        for _, _, name, value_json, wall, counter, node in group:
            doc[name] = json.loads(value_json)
            clocks[name] = [wall, counter, node]
        yield {
            "collection": collection,
            "record_id": record_id,
            "doc_json": _canonical(doc),
            "clocks_json": _canonical(clocks),
        }


def _field_rows(conn: sa.Connection) -> Iterator[dict[str, Any]]:
    c = _records.c
    rows = conn.execute(
        sa.select(c.collection, c.record_id, c.doc_json, c.clocks_json), execution_options=_STREAM
    )
    for collection, record_id, doc_json, clocks_json in rows:
        clocks = json.loads(clocks_json)
        for name, value in json.loads(doc_json).items():
            wall, counter, node = clocks[name]
            yield {
                "collection": collection,
                "record_id": record_id,
                "field": name,
                "value_json": _canonical(value),
                "hlc": f"{wall:013d}-{counter:05d}-{node}",
                "hlc_wall_ms": wall,
                "hlc_counter": counter,
                "hlc_node": node,
            }


def _chunks(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    while chunk := list(itertools.islice(rows, _CHUNK)):
        yield chunk

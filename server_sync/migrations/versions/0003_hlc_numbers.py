"""Record-field stamps as numbers: compared as (wall_ms, counter, node), never as text.

Existing rows are carried over: each stored stamp is read with the old, lenient rule
(any Unicode digit, as ``str.isdigit`` let through) and rewritten in the strict ASCII
form, with its numbers in the new columns, so a stamp once written in full-width or
Arabic-Indic digits now sorts by the value it spells instead of after every other.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import re
import unicodedata

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_KEY = ("collection", "record_id", "field")
_ASCII = re.compile(r"[0-9]{13}-[0-9]{5}-.+", re.DOTALL)


def _node_type() -> sa.types.TypeEngine[str]:
    """Byte-ordered text on PostgreSQL too (frozen copy of models.ordered_text(64))."""
    return sa.String(64).with_variant(sa.String(64, collation="C"), "postgresql")


def _number(text: str) -> int:
    """A run of Unicode digits as an int (full-width or Arabic-Indic "12" is 12)."""
    return int("".join(str(unicodedata.digit(ch)) for ch in text)) if text else 0


def _carry(stamp: str) -> tuple[int, int, str]:
    """(wall_ms, counter, node) of a stamp the old parser accepted."""
    wall, _, rest = stamp.partition("-")
    counter, _, node = rest.partition("-")
    return _number(wall), _number(counter), node


def upgrade() -> None:
    """Add the numeric stamp columns, fill them from the text, then require them."""
    with op.batch_alter_table("record_fields") as batch:
        batch.add_column(sa.Column("hlc_wall_ms", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("hlc_counter", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("hlc_node", _node_type(), nullable=True))
    conn = op.get_bind()
    table = sa.table(
        "record_fields",
        *(sa.column(name) for name in (*_KEY, "hlc", "hlc_wall_ms", "hlc_counter", "hlc_node")),
    )
    # The rare stamps in other digits first, one by one, rewritten in ASCII ...
    odd = list(conn.execute(sa.select(table.c.hlc).distinct()).scalars())
    for stamp in (h for h in odd if not _ASCII.fullmatch(h)):
        wall, counter, node = _carry(stamp)
        conn.execute(
            table.update()
            .where(table.c.hlc == stamp)
            .values(
                hlc=f"{wall:013d}-{counter:05d}-{node}",
                hlc_wall_ms=wall,
                hlc_counter=counter,
                hlc_node=node,
            )
        )
    # ... then every other row in one statement, the numbers cut from the text.
    conn.execute(
        table.update()
        .where(table.c.hlc_wall_ms.is_(None))
        .values(
            hlc_wall_ms=sa.cast(sa.func.substr(table.c.hlc, 1, 13), sa.BigInteger()),
            hlc_counter=sa.cast(sa.func.substr(table.c.hlc, 15, 5), sa.Integer()),
            hlc_node=sa.func.substr(table.c.hlc, 21),
        )
    )
    with op.batch_alter_table("record_fields") as batch:
        batch.alter_column("hlc_wall_ms", existing_type=sa.BigInteger(), nullable=False)
        batch.alter_column("hlc_counter", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("hlc_node", existing_type=_node_type(), nullable=False)


def downgrade() -> None:
    """Drop the numeric columns (the text stays, in the strict form)."""
    with op.batch_alter_table("record_fields") as batch:
        batch.drop_column("hlc_node")
        batch.drop_column("hlc_counter")
        batch.drop_column("hlc_wall_ms")

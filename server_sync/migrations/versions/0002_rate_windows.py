"""Fixed-window counters for load shedding, shared by every server process.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create rate_windows."""
    op.create_table(
        "rate_windows",
        sa.Column("scope", sa.String(80), nullable=False),
        sa.Column("window", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "window", name="pk_rate_windows"),
    )


def downgrade() -> None:
    """Drop rate_windows."""
    op.drop_table("rate_windows")

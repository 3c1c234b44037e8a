"""The device journal and its audit: journal events, and one status row per device.

``journal_events`` keeps each device's journal events once per (device, event id);
``device_status`` is the rollup the fleet view sorts on, one row per device, made
here for every device already enrolled.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

_id = sa.String(64)
_pk_int = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

#: device_status's numeric columns, each defaulting to 0 (0 = never / none).
_ZEROS = (
    "last_seen_ms",
    "reports",
    "offset_ms",
    "report_sent_ms",
    "status_at_ms",
    "queue_depth",
    "parked",
    "oldest_parked_ms",
    "figures_at_ms",
    "offline_ms",
    "online_ms",
    "attempts",
    "failed",
    "last_sync_ms",
)


def upgrade() -> None:
    """Create journal_events and device_status; a status row for every device."""
    op.create_table(
        "journal_events",
        sa.Column("id", _pk_int, autoincrement=True, nullable=False),
        sa.Column("device_id", _id, nullable=False),
        sa.Column("event_id", _id, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("at_server_ms", sa.BigInteger(), nullable=False),
        sa.Column("received_ms", sa.BigInteger(), nullable=False),
        sa.Column("batch_id", _id, nullable=False),
        sa.Column("channel", _id, nullable=True),
        sa.Column("up", sa.Boolean(), nullable=True),
        sa.Column("body_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_journal_events"),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name="fk_journal_events_device_id_devices"
        ),
        sa.UniqueConstraint("device_id", "event_id", name="uq_journal_events_device_id_event_id"),
    )
    op.create_index(
        "ix_journal_events_device_time", "journal_events", ["device_id", "at_server_ms", "id"]
    )
    op.create_index(
        "ix_journal_events_device_kind_time",
        "journal_events",
        ["device_id", "kind", "at_server_ms"],
    )
    columns = [
        sa.Column(name, sa.BigInteger(), nullable=False, server_default="0") for name in _ZEROS
    ]
    op.create_table(
        "device_status",
        sa.Column("device_id", _id, nullable=False),
        *columns,
        sa.Column("app_version", _id, nullable=True),
        sa.Column("protocol_version", sa.String(16), nullable=True),
        sa.Column("free_bytes", sa.BigInteger(), nullable=True),
        sa.Column("failure_ppm", sa.Integer(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("device_id", name="pk_device_status"),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name="fk_device_status_device_id_devices"
        ),
    )
    for name, column in (
        ("offline", "offline_ms"),
        ("failure", "failure_ppm"),
        ("seen", "last_seen_ms"),
        ("queue", "queue_depth"),
        ("parked", "oldest_parked_ms"),
    ):
        op.create_index(f"ix_device_status_{name}", "device_status", [column, "device_id"])
    op.execute("INSERT INTO device_status (device_id) SELECT id FROM devices")


def downgrade() -> None:
    """Drop device_status and journal_events (the journal is lost)."""
    op.drop_table("device_status")
    op.drop_table("journal_events")

"""Admin credentials, the admin request log, the fleet data box and device commands.

Revision ID: 0006
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

_id = sa.String(64)
_name = sa.String(128)
_when = sa.DateTime(timezone=True)
_pk_int = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _device_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["device_id"], ["devices.id"], name=f"fk_{table}_device_id_devices"
    )


def upgrade() -> None:
    """Create admins, admin_log, the device_databox tables and device_commands."""
    op.create_table(
        "admins",
        sa.Column("id", _id, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", _when, nullable=False),
        sa.Column("revoked_at", _when, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_admins"),
        sa.UniqueConstraint("token_hash", name="uq_admins_token_hash"),
    )
    op.create_table(
        "admin_log",
        sa.Column("id", _pk_int, nullable=False, autoincrement=True),
        sa.Column("at", _when, nullable=False),
        sa.Column("admin_id", _id, nullable=True),
        sa.Column("remote_addr", sa.String(64), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_admin_log"),
    )
    op.create_table(
        "device_databox",
        sa.Column("device_id", _id, nullable=False),
        sa.Column("op_id", _id, nullable=False),
        sa.Column("collection", _name, nullable=False),
        sa.Column("record_id", _name, nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("message", sa.String(1000), nullable=False),
        sa.Column("age_s", sa.BigInteger(), nullable=False),
        sa.Column("reported_at", _when, nullable=False),
        sa.Column("parked_at", _when, nullable=False),
        sa.PrimaryKeyConstraint("device_id", "op_id", name="pk_device_databox"),
        _device_fk("device_databox"),
    )
    op.create_index("ix_device_databox_parked_at", "device_databox", ["parked_at"])
    op.create_table(
        "device_databox_state",
        sa.Column("device_id", _id, nullable=False),
        sa.Column("sent_ms", sa.BigInteger(), nullable=False),
        sa.Column("reported_at", _when, nullable=False),
        sa.Column("pending", sa.BigInteger(), nullable=False),
        sa.Column("in_flight", sa.BigInteger(), nullable=False),
        sa.Column("parked", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", name="pk_device_databox_state"),
        _device_fk("device_databox_state"),
    )
    op.create_table(
        "device_databox_reasons",
        sa.Column("device_id", _id, nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("parked", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "reason", name="pk_device_databox_reasons"),
        _device_fk("device_databox_reasons"),
    )
    op.create_table(
        "device_commands",
        sa.Column("id", _id, nullable=False),
        sa.Column("device_id", _id, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("op_id", _id, nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_by", _id, nullable=False),
        sa.Column("created_at", _when, nullable=False),
        sa.Column("delivered_at", _when, nullable=True),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("outcome_at", _when, nullable=True),
        sa.Column("outcome_code", sa.String(64), nullable=True),
        sa.Column("outcome_message", sa.String(1000), nullable=True),
        sa.Column("new_op_id", _id, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_device_commands"),
        _device_fk("device_commands"),
        sa.ForeignKeyConstraint(
            ["created_by"], ["admins.id"], name="fk_device_commands_created_by_admins"
        ),
    )
    op.create_index("ix_device_commands_device_id", "device_commands", ["device_id"])
    op.create_index("ix_device_commands_state", "device_commands", ["state"])


def downgrade() -> None:
    """Drop them, newest first."""
    for table in (
        "device_commands",
        "device_databox_reasons",
        "device_databox_state",
        "device_databox",
        "admin_log",
        "admins",
    ):
        op.drop_table(table)

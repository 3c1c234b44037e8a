"""The server's tables as SQLAlchemy Core metadata (the migrations create them)."""

from __future__ import annotations

import sqlalchemy as sa

#: Names every constraint, so Alembic can find them again in later migrations.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING)


def ordered_text(length: int | None = None) -> sa.types.TypeEngine[str]:
    """Text compared byte by byte: HLC stamps and values must sort alike on every database."""
    # PostgreSQL compares text by the database's locale collation unless told
    # otherwise; "C" is plain byte order, which is what SQLite does by default.
    if length is None:
        return sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


_id = sa.String(64)
_name = sa.String(128)
_when = sa.DateTime(timezone=True)
_pk_int = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

devices = sa.Table(
    "devices",
    metadata,
    sa.Column("id", _id, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", _when, nullable=False),
    sa.Column("revoked_at", _when, nullable=True),
)

ops = sa.Table(
    "ops",
    metadata,
    sa.Column("id", _pk_int, primary_key=True, autoincrement=True),
    sa.Column("device_id", _id, sa.ForeignKey("devices.id"), nullable=False),
    sa.Column("op_id", _id, nullable=False),
    sa.Column("seq", sa.BigInteger(), nullable=False),
    sa.Column("tx_id", _id, nullable=False),
    sa.Column("batch_id", _id, nullable=False),
    sa.Column("collection", _name, nullable=False),
    sa.Column("record_id", _name, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("hlc", ordered_text(64), nullable=False),
    sa.Column("schema_version", sa.Integer(), nullable=False),
    sa.Column("fields_json", sa.Text(), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("result_json", sa.Text(), nullable=False),
    sa.Column("received_at", _when, nullable=False),
    sa.UniqueConstraint("device_id", "op_id", name="uq_ops_device_id_op_id"),
)

records = sa.Table(
    "records",
    metadata,
    sa.Column("collection", ordered_text(128), primary_key=True),
    sa.Column("record_id", ordered_text(128), primary_key=True),
    # The current document, {field: value} as canonical JSON; "__deleted__" is the
    # tombstone flag (true after a delete that no later write beat).
    sa.Column("doc_json", sa.Text(), nullable=False),
    # Each field's stamp, {field: [wall_ms, counter, node]}: merged by conflict.merge
    # as numbers, never as text.
    sa.Column("clocks_json", sa.Text(), nullable=False),
)


rate_windows = sa.Table(
    "rate_windows",
    metadata,
    sa.Column("scope", sa.String(80), primary_key=True),
    sa.Column("window", sa.BigInteger(), primary_key=True),
    sa.Column("count", sa.Integer(), nullable=False),
)

# --- admin credentials, the admin request log, the fleet data box, device commands ----

admins = sa.Table(
    "admins",
    metadata,
    sa.Column("id", _id, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", _when, nullable=False),
    sa.Column("revoked_at", _when, nullable=True),
)

admin_log = sa.Table(
    "admin_log",
    metadata,
    sa.Column("id", _pk_int, primary_key=True, autoincrement=True),
    sa.Column("at", _when, nullable=False),
    # Who: null when the request carried no token an admin holds.
    sa.Column("admin_id", _id, nullable=True),
    sa.Column("remote_addr", sa.String(64), nullable=False),
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("path", sa.String(512), nullable=False),
    sa.Column("status", sa.Integer(), nullable=False),
    # The error code of a refused request (e.g. device_token), null on success.
    sa.Column("code", sa.String(64), nullable=True),
)

device_databox = sa.Table(
    "device_databox",
    metadata,
    sa.Column("device_id", _id, sa.ForeignKey("devices.id"), primary_key=True),
    sa.Column("op_id", _id, primary_key=True),
    sa.Column("collection", _name, nullable=False),
    sa.Column("record_id", _name, nullable=False),
    sa.Column("code", sa.String(64), nullable=False),
    sa.Column("message", sa.String(1000), nullable=False),
    # Seconds the entry had been parked when the device reported it (a duration on the
    # device's own clock, so its clock's offset does not matter).
    sa.Column("age_s", sa.BigInteger(), nullable=False),
    sa.Column("reported_at", _when, nullable=False),
    # reported_at - age_s: the server's estimate of when it was parked (the sort key).
    sa.Column("parked_at", _when, nullable=False, index=True),
)

device_databox_state = sa.Table(
    "device_databox_state",
    metadata,
    sa.Column("device_id", _id, sa.ForeignKey("devices.id"), primary_key=True),
    # The device clock's sent_ms of the report the snapshot came from: an older report
    # (a replayed batch) never replaces a newer one.
    sa.Column("sent_ms", sa.BigInteger(), nullable=False),
    sa.Column("reported_at", _when, nullable=False),
    sa.Column("pending", sa.BigInteger(), nullable=False),
    sa.Column("in_flight", sa.BigInteger(), nullable=False),
    sa.Column("parked", sa.BigInteger(), nullable=False),
)

device_databox_reasons = sa.Table(
    "device_databox_reasons",
    metadata,
    sa.Column("device_id", _id, sa.ForeignKey("devices.id"), primary_key=True),
    sa.Column("reason", sa.String(64), primary_key=True),
    sa.Column("parked", sa.BigInteger(), nullable=False),
)

device_commands = sa.Table(
    "device_commands",
    metadata,
    sa.Column("id", _id, primary_key=True),
    sa.Column("device_id", _id, sa.ForeignKey("devices.id"), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("op_id", _id, nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("created_by", _id, sa.ForeignKey("admins.id"), nullable=False),
    sa.Column("created_at", _when, nullable=False),
    sa.Column("delivered_at", _when, nullable=True),
    sa.Column("deliveries", sa.Integer(), nullable=False),
    sa.Column("outcome_at", _when, nullable=True),
    sa.Column("outcome_code", sa.String(64), nullable=True),
    sa.Column("outcome_message", sa.String(1000), nullable=True),
    sa.Column("new_op_id", _id, nullable=True),
)

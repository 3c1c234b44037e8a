"""Device enrolment and bearer-token authentication; the server keeps only token hashes."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from .errors import DeviceRevoked, NotFound, Unauthorized
from .models import device_status, devices


@dataclass(frozen=True, slots=True)
class Device:
    """An enrolled device as an admin sees it (never its token)."""

    device_id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        """Whether the device is refused from now on."""
        return self.revoked_at is not None


def add_device(conn: sa.Connection, name: str, *, now: datetime | None = None) -> tuple[str, str]:
    """Enrol a device; return (device_id, token). The token is shown once, then only hashed."""
    name = name.strip()
    if not 0 < len(name) <= 200:
        raise ValueError("a device name is 1-200 characters")
    device_id = uuid.uuid4().hex
    token = secrets.token_urlsafe(32)
    conn.execute(
        devices.insert().values(
            id=device_id,
            name=name,
            token_hash=hash_token(token),
            created_at=now or datetime.now(UTC),
        )
    )
    conn.execute(device_status.insert().values(device_id=device_id))  # in the fleet view at once
    return device_id, token


def revoke_device(conn: sa.Connection, device_id: str, *, now: datetime | None = None) -> Device:
    """Refuse ``device_id`` from now on (its data stays); revoking twice keeps the first time."""
    conn.execute(
        devices.update()
        .where(devices.c.id == device_id, devices.c.revoked_at.is_(None))
        .values(revoked_at=now or datetime.now(UTC))
    )
    row = conn.execute(sa.select(devices).where(devices.c.id == device_id)).one_or_none()
    if row is None:
        raise NotFound(f"no device {device_id!r}", {"device_id": device_id})
    return _device(row)


def list_devices(conn: sa.Connection) -> list[Device]:
    """Every enrolled device, oldest first."""
    rows = conn.execute(sa.select(devices).order_by(devices.c.created_at, devices.c.id))
    return [_device(row) for row in rows]


def authenticate(conn: sa.Connection, authorization: str | None) -> str:
    """The device id an ``Authorization: Bearer`` header stands for, or raise."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("an 'Authorization: Bearer <token>' header is required")
    row = conn.execute(
        sa.select(devices.c.id, devices.c.revoked_at).where(
            devices.c.token_hash == hash_token(token)
        )
    ).one_or_none()
    if row is None:
        raise Unauthorized("unknown token")
    if row.revoked_at is not None:
        raise DeviceRevoked(f"device {row.id} was revoked", {"device_id": row.id})
    return str(row.id)


def hash_token(token: str) -> str:
    """The sha256 hex digest stored in place of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def _device(row: sa.Row[tuple[object, ...]]) -> Device:
    return Device(
        device_id=row.id,
        name=row.name,
        created_at=_utc(row.created_at),
        revoked_at=None if row.revoked_at is None else _utc(row.revoked_at),
    )


def _utc(moment: datetime) -> datetime:
    # SQLite keeps no offset; everything the server writes is UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)

"""Admin credentials, kept apart from device credentials: enrol, list, revoke, authenticate.

An admin token is ``fsa_`` + 32 random bytes (URL-safe base64); like a device token it
is shown once and only its sha256 is stored. The prefix lets a log scanner or a person
tell an admin token from a device token at a glance; authentication never relies on it.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, cast

import sqlalchemy as sa

from .auth import hash_token
from .errors import AdminRevoked, AdminUnauthorized, DeviceToken, NotFound, RoleRequired
from .models import admins, devices

Role = Literal["viewer", "admin"]

#: Roles in order of power: a viewer reads; an admin also sends commands and reads the log.
ROLES: tuple[Role, ...] = ("viewer", "admin")

#: What every admin token starts with.
TOKEN_PREFIX = "fsa_"

#: Longest Authorization header read: a token is 47 characters; anything longer is refused
#: before it is hashed.
MAX_AUTHORIZATION = 256


@dataclass(frozen=True, slots=True)
class Admin:
    """An admin credential as the server lists it (never its token)."""

    admin_id: str
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None

    def may(self, role: Role) -> bool:
        """Whether this admin's role includes ``role``."""
        return ROLES.index(self.role) >= ROLES.index(role)


def add_admin(
    conn: sa.Connection, name: str, role: str, *, now: datetime | None = None
) -> tuple[Admin, str]:
    """Create an admin credential; return it and its token (shown once, then only hashed)."""
    name = name.strip()
    if not 0 < len(name) <= 200 or not name.isprintable():
        raise ValueError("an admin name is 1-200 printable characters")
    if role not in ROLES:
        raise ValueError(f"a role is one of {', '.join(ROLES)}, not {role!r}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = {
        "id": uuid.uuid4().hex,
        "name": name,
        "role": role,
        "token_hash": hash_token(token),
        "created_at": now or datetime.now(UTC),
        "revoked_at": None,
    }
    conn.execute(admins.insert().values(row))
    return _admin_of(row), token


def list_admins(conn: sa.Connection) -> list[Admin]:
    """Every admin credential, oldest first."""
    rows = conn.execute(sa.select(admins).order_by(admins.c.created_at, admins.c.id))
    return [_admin_of(row._mapping) for row in rows]


def revoke_admin(conn: sa.Connection, admin_id: str, *, now: datetime | None = None) -> Admin:
    """Refuse ``admin_id`` from now on; revoking twice keeps the first time."""
    conn.execute(
        admins.update()
        .where(admins.c.id == admin_id, admins.c.revoked_at.is_(None))
        .values(revoked_at=now or datetime.now(UTC))
    )
    row = conn.execute(sa.select(admins).where(admins.c.id == admin_id)).one_or_none()
    if row is None:
        raise NotFound(f"no admin {admin_id!r}", {"admin_id": admin_id})
    return _admin_of(row._mapping)


def authenticate_admin(conn: sa.Connection, authorization: str | None, role: Role) -> Admin:
    """The admin an ``Authorization: Bearer`` header stands for, allowed ``role``; or raise."""
    admin = identify_admin(conn, authorization)
    check_role(admin, role)
    return admin


def identify_admin(conn: sa.Connection, authorization: str | None) -> Admin:
    """The unrevoked admin an ``Authorization: Bearer`` header stands for, or raise."""
    header = (authorization or "").strip()
    if len(header) > MAX_AUTHORIZATION:
        raise AdminUnauthorized(f"the Authorization header is over {MAX_AUTHORIZATION} characters")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AdminUnauthorized("an 'Authorization: Bearer <admin token>' header is required")
    if not (token.isascii() and token.isprintable()):
        raise AdminUnauthorized("a token is printable ASCII")
    digest = hash_token(token)
    row = conn.execute(sa.select(admins).where(admins.c.token_hash == digest)).one_or_none()
    if row is None:
        _refuse_device_token(conn, digest)
        raise AdminUnauthorized("unknown admin token")
    admin = _admin_of(row._mapping)
    if admin.revoked_at is not None:
        raise AdminRevoked(f"admin {admin.admin_id} was revoked", {"admin_id": admin.admin_id})
    return admin


def check_role(admin: Admin, role: Role) -> None:
    """Raise RoleRequired unless ``admin``'s role includes ``role``."""
    if not admin.may(role):
        raise RoleRequired(
            f"this needs the {role} role; {admin.name!r} is a {admin.role}",
            {"required": role, "role": admin.role},
        )


def _refuse_device_token(conn: sa.Connection, digest: str) -> None:
    """Raise DeviceToken if ``digest`` is a device's token: say so, rather than 'unknown'."""
    found = conn.execute(sa.select(devices.c.id).where(devices.c.token_hash == digest)).first()
    if found is not None:
        raise DeviceToken("a device token cannot be used on admin endpoints")


def _admin_of(row: sa.RowMapping | dict[str, object]) -> Admin:
    revoked = row["revoked_at"]
    return Admin(
        admin_id=str(row["id"]),
        name=str(row["name"]),
        role=cast(Role, row["role"]),
        created_at=_utc(cast(datetime, row["created_at"])),
        revoked_at=None if revoked is None else _utc(cast(datetime, revoked)),
    )


def _utc(moment: datetime) -> datetime:
    # SQLite keeps no offset; everything the server writes is UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)

"""PLACEHOLDER for h9-admin's ``require_admin(role)``: same name, signature and checks.

h9-admin owns this module (admin credentials in their own table, a request log);
until its version is merged, this one lets the audit endpoints be written and tested
against the same contract: an ``Authorization: Bearer`` token whose sha256 an admin
holds, with a role (a viewer reads; an admin also acts). Here the hashes come from
the app config ``ADMIN_TOKENS`` ({sha256 hex: role}); a device's token is refused
with ``device_token``. When merging, keep h9-admin's module and drop this one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal, ParamSpec

import sqlalchemy as sa
from flask import Response, current_app, make_response, request

from .auth import hash_token
from .errors import AdminUnauthorized, DeviceToken, RoleRequired
from .extension import server_state
from .models import devices

P = ParamSpec("P")

Role = Literal["viewer", "admin"]

#: Roles in order of power.
ROLES: tuple[Role, ...] = ("viewer", "admin")

#: Longest Authorization header read (a token is ~47 characters).
MAX_AUTHORIZATION = 256


def require_admin(role: Role = "viewer") -> Callable[[Callable[P, Any]], Callable[P, Response]]:
    """Decorate a Flask view: only an admin credential with ``role`` (or more) gets in."""

    def decorate(view: Callable[P, Any]) -> Callable[P, Response]:
        @functools.wraps(view)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> Response:
            held = _identify(request.headers.get("Authorization"))
            if ROLES.index(held) < ROLES.index(role):
                raise RoleRequired(f"this needs the {role} role", {"role": held})
            return make_response(view(*args, **kwargs))

        return guarded

    return decorate


def _identify(authorization: str | None) -> Role:
    """The role the bearer token holds, or raise."""
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
    held = (current_app.config.get("ADMIN_TOKENS") or {}).get(digest)
    if held in ROLES:
        return held  # type: ignore[no-any-return]
    with server_state(current_app).reader.connect() as conn:
        device = conn.execute(
            sa.select(devices.c.id).where(devices.c.token_hash == digest)
        ).one_or_none()
    if device is not None:
        raise DeviceToken("a device's token does not open admin endpoints")
    raise AdminUnauthorized("unknown admin token")

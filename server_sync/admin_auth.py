"""``require_admin(role)``: the admin check every admin view wears, and the request log.

Every request to a view so decorated is written to ``admin_log`` (who, when, from
where, method, path, status, error code), whether it was served or refused, in a
transaction of its own after the view's: a refused request leaves its log row and
nothing else. A request whose log row cannot be written is answered with that
error (503 when the database is down), so nothing is served unlogged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ParamSpec

import sqlalchemy as sa
from flask import Response, current_app, g, make_response, request

from .admins import Admin, Role, check_role, identify_admin
from .extension import server_state
from .models import admin_log

P = ParamSpec("P")

#: Where ``require_admin`` leaves the authenticated admin for the view.
ADMIN = "fieldsync_admin"

#: Longest path kept in the log (longer ones are cut, with a marker).
MAX_LOGGED_PATH = 512


@dataclass(frozen=True, slots=True)
class LogRow:
    """One logged admin request."""

    id: int
    at: datetime
    admin_id: str | None
    remote_addr: str
    method: str
    path: str
    status: int
    code: str | None


def require_admin(role: Role = "viewer") -> Callable[[Callable[P, Any]], Callable[P, Response]]:
    """Decorate a Flask view: only an admin credential with ``role`` (or more) gets in."""

    def decorate(view: Callable[P, Any]) -> Callable[P, Response]:
        @functools.wraps(view)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> Response:
            admin: Admin | None = None
            try:
                admin = _identify()
                check_role(admin, role)
                response = make_response(view(*args, **kwargs))
            except Exception as exc:  # rendered here, so that refusals are logged too
                response = _render(exc)
            _log(admin, response)
            return response

        return guarded

    return decorate


def current_admin() -> Admin:
    """The admin ``require_admin`` let in for this request."""
    admin = g.get(ADMIN)
    assert isinstance(admin, Admin), "current_admin() outside a require_admin view"
    return admin


def list_log(conn: sa.Connection, *, limit: int, before: int | None = None) -> list[LogRow]:
    """Logged requests, newest first, ``limit`` of them with ids below ``before``."""
    query = sa.select(admin_log).order_by(admin_log.c.id.desc()).limit(limit)
    if before is not None:
        query = query.where(admin_log.c.id < before)
    return [LogRow(**{**row._mapping, "at": _utc(row.at)}) for row in conn.execute(query)]


def _identify() -> Admin:
    with server_state(current_app).reader.begin() as conn:
        admin = identify_admin(conn, request.headers.get("Authorization"))
    g.setdefault(ADMIN, admin)
    return admin


def _render(exc: Exception) -> Response:
    from .app import render_error  # the app's one error renderer (app imports this module)

    return render_error(exc)


def _log(admin: Admin | None, response: Response) -> None:
    """Write the request's log row in a transaction of its own."""
    code = None
    if response.status_code >= 400 and response.is_json:
        body = response.get_json(silent=True)
        code = body["error"]["code"] if isinstance(body, dict) and "error" in body else None
    row = {
        "at": datetime.now(UTC),
        "admin_id": None if admin is None else admin.admin_id,
        "remote_addr": _printable(request.remote_addr or "", 64),
        "method": _printable(request.method, 16),
        "path": _printable(request.path, MAX_LOGGED_PATH),
        "status": response.status_code,
        "code": code,
    }
    with server_state(current_app).engine.begin() as conn:
        conn.execute(admin_log.insert().values(row))


def _printable(text: str, most: int) -> str:
    """``text`` with control characters, NUL and lone surrogates escaped, cut to ``most``."""
    out = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
    return out if len(out) <= most else out[: most - 1] + "…"


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)

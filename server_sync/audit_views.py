"""The audit blueprint: the fleet view, one device's audit, one device's journal.

Views load the query string with a schema (audit_schemas.py), call a plain function
(fleet.py, audit.py, journal.py) in a read-only transaction, and dump the answer
with a schema. ``require_admin("viewer")`` lets in admins only.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from marshmallow import Schema, ValidationError

from protocol._text import is_name
from protocol.constants import MAX_ID_LENGTH

from . import audit_schemas as s
from .admin_auth import require_admin
from .audit import RETENTION_MS, device_audit
from .errors import InvalidRequest, UnknownDevice
from .extension import server_state
from .fleet import fleet, parse_cursor
from .journal import list_events
from .models import devices

audit_api = Blueprint("audit", __name__)

#: Characters of a query string read at all: every valid one is far shorter.
MAX_QUERY = 512


@audit_api.get("/v1/admin/devices")
@require_admin("viewer")
def get_devices() -> Response:
    """The fleet, sorted and filtered, a page at a time."""
    query = _query(s.FleetQuerySchema())
    cursor = parse_cursor(query["cursor"]) if "cursor" in query else None
    hours = query.get("not_seen_hours")
    seen_before = None if hours is None else _now_ms() - hours * 3_600_000
    limit = query["limit"]
    with server_state(current_app).reader.begin() as conn:
        rows = fleet(
            conn, sort=query["sort"], limit=limit, cursor=cursor, seen_before_ms=seen_before
        )
    page = {"devices": rows, "next_cursor": rows[-1].cursor if len(rows) == limit else None}
    return jsonify(s.FleetPageSchema().dump(page))


@audit_api.get("/v1/admin/devices/<device_id>/audit")
@require_admin("viewer")
def get_audit(device_id: str) -> Response:
    """One device's audit over a window (default: the last 72 hours)."""
    _check_device_id(device_id)
    query = _query(s.AuditQuerySchema())
    now = _now_ms()
    end = query.get("end_ms", now)
    start = end - query["window"]
    if end > now or start < now - RETENTION_MS:
        raise InvalidRequest(
            "the window must end by now and start within the retention "
            f"({RETENTION_MS // 3_600_000} h)",
            {"end_ms": [f"at most {now}; end_ms - window at least {now - RETENTION_MS}"]},
        )
    with server_state(current_app).reader.begin() as conn:
        audit = device_audit(conn, device_id, start, end)
    if audit is None:
        raise UnknownDevice(f"no device {device_id!r}", {"device_id": device_id})
    return jsonify(s.AuditSchema().dump(audit))


@audit_api.get("/v1/admin/devices/<device_id>/events")
@require_admin("viewer")
def get_events(device_id: str) -> Response:
    """One device's journal in server-time order, a page at a time."""
    _check_device_id(device_id)
    query = _query(s.EventsQuerySchema())
    after = None
    if "after" in query:
        at, _, row = query["after"].partition(".")
        after = (int(at), int(row))
        if max(after) >= 2**63:  # a 64-bit column's range: SQLite could not even bind it
            raise InvalidRequest("after is not a cursor this server wrote", {"after": ["invalid"]})
    limit = query["limit"]
    with server_state(current_app).reader.begin() as conn:
        if conn.execute(devices.select().where(devices.c.id == device_id)).first() is None:
            raise UnknownDevice(f"no device {device_id!r}", {"device_id": device_id})
        found = list_events(conn, device_id, limit=limit, after=after, kind=query.get("kind"))
    page = {"events": found, "next_after": found[-1].cursor if len(found) == limit else None}
    return jsonify(s.EventsPageSchema().dump(page))


def _now_ms() -> int:
    return int(time.time() * 1000)


def _check_device_id(device_id: str) -> None:
    """404 for an id no device can have (control characters, too long) before any query."""
    if not is_name(device_id, MAX_ID_LENGTH):
        raise UnknownDevice("no device has such an id", {"device_id": device_id[:80]})


def _query(schema: Schema) -> dict[str, Any]:
    """The query string loaded by ``schema``; long, repeated or unknown parameters refused."""
    if len(request.query_string) > MAX_QUERY:
        raise InvalidRequest(f"the query string is over {MAX_QUERY} bytes")
    args = request.args
    repeated = sorted(k for k in args if len(args.getlist(k)) > 1)
    if repeated:
        raise InvalidRequest(
            "a query parameter is repeated", {_key(k): ["given more than once"] for k in repeated}
        )
    try:
        loaded = schema.load(dict(args))
    except ValidationError as exc:
        raise InvalidRequest("the query is not valid", _errors(exc.messages)) from exc
    assert isinstance(loaded, dict)
    return loaded


def _errors(messages: Any) -> dict[str, Any]:
    """marshmallow's messages with printable keys (unknown keys echoed cut and escaped)."""
    if not isinstance(messages, dict):
        return {"_schema": messages}
    return {_key(str(k)): v for k, v in messages.items()}


def _key(key: str) -> str:
    return key[:40].encode("unicode_escape").decode()

"""The admin blueprint: request log, fleet data box, and commands to devices.

Views only check the request against its schema, call a plain service function and
dump the answer with a schema; ``require_admin`` lets in admins (a viewer reads, only
an admin acts or reads the log) and logs every request.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from marshmallow import Schema, ValidationError

from protocol import ProtocolError
from protocol._text import is_name
from protocol.codec import _parse as parse_json  # the codec's strict JSON (unique keys...)
from protocol.constants import MAX_ID_LENGTH, MEDIA_TYPE

from . import admin_schemas as s
from .admin_auth import current_admin, list_log, require_admin
from .commands import create_command, list_commands
from .databox import fleet_databox, reason_totals
from .errors import InvalidRequest, PayloadTooLarge, UnknownDevice, UnsupportedMediaType
from .extension import server_state
from .models import devices

admin = Blueprint("admin", __name__)

#: Bytes an admin request body may have: a command is a few hundred.
MAX_ADMIN_BODY = 8 * 1024


@admin.get("/v1/admin/log")
@require_admin("admin")
def get_log() -> Response:
    """Logged admin requests, newest first."""
    query = _query(s.LogQuerySchema())
    with server_state(current_app).reader.begin() as conn:
        found = list_log(conn, limit=query["limit"], before=query.get("before"))
    full = len(found) == query["limit"]
    page = {"entries": found, "next_before": found[-1].id if full else None}
    return jsonify(s.LogPageSchema().dump(page))


@admin.get("/v1/admin/databox")
@require_admin("viewer")
def get_databox() -> Response:
    """Stuck entries across the fleet, oldest first, and totals by reason."""
    query = _query(s.DataboxQuerySchema())
    now = datetime.now(UTC)
    with server_state(current_app).reader.begin() as conn:
        totals = reason_totals(conn)
        found = fleet_databox(conn, now=now, **query)
    entries = [
        {
            **_fields(e),
            "reported_age_s": e.age_s,
            "age_s": e.age_s + max(0, int((now - e.reported_at).total_seconds())),
        }
        for e in found
    ]
    full = len(found) == query["limit"]
    page = {
        "reasons": totals,
        "entries": entries,
        "next_offset": query["offset"] + len(found) if full else None,
    }
    return jsonify(s.DataboxPageSchema().dump(page))


@admin.post("/v1/admin/devices/<device_id>/commands")
@require_admin("admin")
def post_command(device_id: str) -> Response:
    """Queue a resubmit or discard for a device's parked entry (201; 200 if already open)."""
    _check_device_id(device_id)
    body = _body(s.CommandRequestSchema())
    with server_state(current_app).engine.begin() as conn:
        command, created = create_command(
            conn,
            device_id,
            body["kind"],
            body["op_id"],
            body["reason"],
            admin_id=current_admin().admin_id,
        )
    response = jsonify(s.AdminCommandSchema().dump(command))
    response.status_code = 201 if created else 200
    return response


@admin.get("/v1/admin/devices/<device_id>/commands")
@require_admin("viewer")
def get_commands(device_id: str) -> Response:
    """A device's commands with their outcomes, newest first."""
    _check_device_id(device_id)
    query = _query(s.CommandsQuerySchema())
    with server_state(current_app).reader.begin() as conn:
        if conn.execute(devices.select().where(devices.c.id == device_id)).first() is None:
            raise UnknownDevice(f"no device {device_id!r}", {"device_id": device_id})
        found = list_commands(conn, device_id, limit=query["limit"], before=query.get("before"))
    full = len(found) == query["limit"]
    page = {"commands": found, "next_before": found[-1].command_id if full else None}
    return jsonify(s.CommandsPageSchema().dump(page))


def _check_device_id(device_id: str) -> None:
    """404 for an id no device can have (control characters, too long) before any query."""
    if not is_name(device_id, MAX_ID_LENGTH):
        raise UnknownDevice("no device has such an id", {"device_id": device_id[:80]})


def _query(schema: Schema) -> dict[str, Any]:
    """The query string loaded by ``schema``; a repeated or unknown parameter is refused."""
    args = request.args
    repeated = sorted(k for k in args if len(args.getlist(k)) > 1)
    if repeated:
        raise InvalidRequest(
            "a query parameter is repeated", {k[:40]: ["given more than once"] for k in repeated}
        )
    return _load(schema, dict(args))


def _body(schema: Schema) -> dict[str, Any]:
    """The JSON body loaded by ``schema``: strict JSON, at most MAX_ADMIN_BODY bytes."""
    if request.mimetype != MEDIA_TYPE:
        raise UnsupportedMediaType(
            f"Content-Type must be {MEDIA_TYPE}", {"content_type": request.content_type or ""}
        )
    length = request.content_length
    if length is not None and length > MAX_ADMIN_BODY:
        raise PayloadTooLarge(f"body is {length} bytes; at most {MAX_ADMIN_BODY}")
    data = request.stream.read(MAX_ADMIN_BODY + 1)
    if len(data) > MAX_ADMIN_BODY:
        raise PayloadTooLarge(f"body is over {MAX_ADMIN_BODY} bytes")
    try:
        raw = parse_json(data)
    except ProtocolError as exc:
        raise InvalidRequest(str(exc), dict(exc.errors) or {"_schema": [str(exc)]}) from exc
    return _load(schema, raw)


def _load(schema: Schema, raw: dict[str, Any]) -> dict[str, Any]:
    try:
        loaded = schema.load(raw)
    except ValidationError as exc:
        raise InvalidRequest("the request is not valid", _errors(exc.messages)) from exc
    assert isinstance(loaded, dict)
    return loaded


def _errors(messages: Any) -> dict[str, Any]:
    """marshmallow's messages with string keys (unknown keys echoed cut and escaped)."""
    if not isinstance(messages, dict):
        return {"_schema": messages}
    return {str(k)[:40].encode("unicode_escape").decode(): v for k, v in messages.items()}


def _fields(value: Any) -> dict[str, Any]:
    return {name: getattr(value, name) for name in value.__slots__}

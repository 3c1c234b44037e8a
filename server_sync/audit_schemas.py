"""marshmallow schemas of the audit endpoints: strict query strings, and the answers.

Queries are refused whole on anything odd (non-ASCII digits, a number out of range,
an unknown or repeated parameter); answers are dumped by the same schemas the
OpenAPI document is generated from, so the schemathesis run checks what is served.
"""

from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from protocol.constants import MAX_ID_LENGTH, MAX_TIME_MS
from protocol.model import EVENT_KINDS

from .admin_schemas import AdminCommandSchema
from .audit import HOUR_MS, RETENTION_MS
from .fleet import MAX_CURSOR, SORTS

#: Devices one fleet page lists at most, and unless told otherwise.
MAX_FLEET_PAGE = 500
DEFAULT_FLEET_PAGE = 50

#: Journal events one page lists at most, and unless told otherwise.
MAX_EVENTS_PAGE = 1000
DEFAULT_EVENTS_PAGE = 100

#: Hours an audit window may span (the journal's retention).
MAX_WINDOW_HOURS = RETENTION_MS // HOUR_MS

#: "72h" or "3d": ASCII digits and a unit, checked before any conversion.
WINDOW = re.compile(r"([0-9]{1,4})([hd])", re.ASCII)

#: An events cursor: the last event's server time and row id.
EVENTS_CURSOR = re.compile(r"([0-9]{1,19})\.([0-9]{1,19})", re.ASCII)

_DIGITS = re.compile(r"[0-9]{1,19}", re.ASCII)


class AsciiInt(fields.Integer):
    """A query-string integer written in ASCII digits, nothing else."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if type(value) is not str or _DIGITS.fullmatch(value) is None:
            raise ValidationError("an integer in ASCII digits (0-9), at most 19 of them")
        return int(value)


class WindowField(fields.Field[int]):
    """An audit window: hours ("72h") or days ("3d"), 1 hour up to the retention
    (loaded as milliseconds)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        match = WINDOW.fullmatch(value) if type(value) is str and len(value) <= 5 else None
        hours = (int(match.group(1)) * (24 if match.group(2) == "d" else 1)) if match else 0
        if not 1 <= hours <= MAX_WINDOW_HOURS:
            raise ValidationError(
                f"a window is 1h to {MAX_WINDOW_HOURS}h (or 1d to {MAX_WINDOW_HOURS // 24}d) "
                "in ASCII digits, e.g. 72h"
            )
        return hours * HOUR_MS


class CursorField(fields.String):
    """A cursor this server wrote, checked for its shape (ASCII digits, bounded)."""

    def __init__(self, pattern: re.Pattern[str], most: int, **kwargs: Any) -> None:
        super().__init__(validate=validate.Length(1, most), **kwargs)
        self.pattern_re = pattern
        self.most = most

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if len(text) > self.most or self.pattern_re.fullmatch(text) is None:
            raise ValidationError("not a cursor this server wrote")
        return text


class AuditQuerySchema(Schema):
    """``GET /v1/admin/devices/<id>/audit``: the window, and when it ends (default now)."""

    window = WindowField(
        load_default=72 * HOUR_MS,
        metadata={
            "description": "1h..720h or 1d..30d, ASCII digits",
            "type": "string",
            "pattern": "^[0-9]{1,4}[hd]$",
            "default": "72h",
        },
    )
    end_ms = AsciiInt(
        validate=validate.Range(0, MAX_TIME_MS),
        metadata={"description": "the window's end (server ms); default now, within retention"},
    )


class FleetQuerySchema(Schema):
    """``GET /v1/admin/devices``: sort, filter, page."""

    sort = fields.String(load_default="offline", validate=validate.OneOf(tuple(SORTS)))
    not_seen_hours = AsciiInt(
        validate=validate.Range(0, MAX_WINDOW_HOURS * 100),
        metadata={"description": "only devices not seen for this many hours (or never)"},
    )
    limit = AsciiInt(load_default=DEFAULT_FLEET_PAGE, validate=validate.Range(1, MAX_FLEET_PAGE))
    cursor = CursorField(
        re.compile(r"[0-9]{1,19}\..+", re.ASCII | re.DOTALL),
        MAX_CURSOR,
        metadata={"description": "`next_cursor` of the page before"},
    )


class EventsQuerySchema(Schema):
    """``GET /v1/admin/devices/<id>/events``: the journal in server-time order, a page."""

    kind = fields.String(validate=validate.OneOf(EVENT_KINDS))
    limit = AsciiInt(load_default=DEFAULT_EVENTS_PAGE, validate=validate.Range(1, MAX_EVENTS_PAGE))
    after = CursorField(
        EVENTS_CURSOR, 39, metadata={"description": "`next_after` of the page before"}
    )


class PeriodSchema(Schema):
    """One offline period, clipped to the window."""

    start_ms = fields.Integer(required=True)
    end_ms = fields.Integer(required=True)
    ms = fields.Integer(required=True)
    open = fields.Boolean(
        required=True, metadata={"description": "still offline when last heard from"}
    )


class AttemptsSchema(Schema):
    """Sync attempts in the window."""

    total = fields.Integer(required=True)
    failed = fields.Integer(required=True)
    failure_rate = fields.Float(required=True, allow_none=True)
    entries_sent = fields.Integer(required=True)
    bytes_sent = fields.Integer(required=True)
    bytes_received = fields.Integer(required=True)
    by_outcome = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    by_channel = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)


class AuditSchema(Schema):
    """One device's audit over a window."""

    device_id = fields.String(required=True)
    name = fields.String(required=True)
    revoked = fields.Boolean(required=True)
    start_ms = fields.Integer(required=True)
    end_ms = fields.Integer(required=True)
    online_ms = fields.Integer(required=True)
    offline_ms = fields.Integer(required=True)
    unknown_ms = fields.Integer(required=True)
    offline_periods = fields.List(fields.Nested(PeriodSchema), required=True)
    attempts = fields.Nested(AttemptsSchema, required=True)
    entries_recorded = fields.Integer(required=True)
    discarded = fields.Integer(required=True)
    resubmitted = fields.Integer(required=True)
    refused = fields.Integer(required=True)
    parked = fields.Integer(required=True)
    queue_depth = fields.Integer(required=True, allow_none=True)
    free_bytes = fields.Integer(required=True, allow_none=True)
    app_version = fields.String(required=True, allow_none=True)
    protocol_version = fields.String(required=True, allow_none=True)
    last_seen_ms = fields.Integer(required=True, allow_none=True)
    last_sync_ms = fields.Integer(required=True, allow_none=True)
    clock_offset_ms = fields.Integer(required=True, allow_none=True)
    commands = fields.List(fields.Nested(AdminCommandSchema), required=True)


class FleetRowSchema(Schema):
    """One device in the fleet view (figures of the default window as of its last report)."""

    device_id = fields.String(required=True)
    name = fields.String(required=True)
    revoked = fields.Boolean(required=True)
    last_seen_ms = fields.Integer(required=True, allow_none=True)
    last_sync_ms = fields.Integer(required=True, allow_none=True)
    figures_at_ms = fields.Integer(required=True, allow_none=True)
    offline_ms = fields.Integer(required=True)
    online_ms = fields.Integer(required=True)
    attempts = fields.Integer(required=True)
    failed = fields.Integer(required=True)
    failure_rate = fields.Float(required=True, allow_none=True)
    queue_depth = fields.Integer(required=True, allow_none=True)
    free_bytes = fields.Integer(required=True, allow_none=True)
    parked = fields.Integer(required=True)
    oldest_parked_ms = fields.Integer(required=True, allow_none=True)
    app_version = fields.String(required=True, allow_none=True)
    protocol_version = fields.String(required=True, allow_none=True)
    clock_offset_ms = fields.Integer(required=True, allow_none=True)


class FleetPageSchema(Schema):
    """A page of the fleet view."""

    devices = fields.List(fields.Nested(FleetRowSchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


class StoredEventSchema(Schema):
    """One journal event as stored: the device's body and the server's times."""

    event_id = fields.String(required=True, validate=validate.Length(1, MAX_ID_LENGTH))
    kind = fields.String(required=True, validate=validate.OneOf(EVENT_KINDS))
    at_ms = fields.Integer(required=True, metadata={"description": "device clock"})
    at_server_ms = fields.Integer(
        required=True, metadata={"description": "corrected to the server's clock"}
    )
    received_ms = fields.Integer(required=True)
    batch_id = fields.String(required=True)
    event = fields.Dict(required=True, metadata={"description": "the event as sent"})


class EventsPageSchema(Schema):
    """A page of a device's journal."""

    events = fields.List(fields.Nested(StoredEventSchema), required=True)
    next_after = fields.String(required=True, allow_none=True)

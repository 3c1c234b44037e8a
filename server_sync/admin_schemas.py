"""marshmallow schemas of the admin API: what each request may carry and each answer holds.

They validate requests (query strings and bodies, strictly: ASCII digits only, bounded
lengths, no control characters, unknown members refused) and dump answers; the OpenAPI
document is generated from them, so the schemathesis run tests what is served.
"""

from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from protocol._text import is_name, safe_text
from protocol.constants import MAX_ID_LENGTH

from .commands import KINDS, MAX_REASON
from .databox import MAX_AGE_S

#: Rows one page of the log, the fleet data box or a device's commands holds at most.
MAX_PAGE = 500

#: Rows per page unless ``limit`` says otherwise.
DEFAULT_PAGE = 100

#: Furthest ``offset`` into the fleet data box (a million stuck entries is a fleet on fire).
MAX_OFFSET = 1_000_000

#: Longest error code and message the fleet data box lists (what a device may report).
MAX_CODE = 64
MAX_MESSAGE = 1000

#: Digits a query-string integer may have: ASCII only (``int()`` also takes "٣", "1_0"
#: and " 7"), bounded before conversion.
_DIGITS = re.compile(r"[0-9]{1,19}", re.ASCII)


class AsciiInt(fields.Integer):
    """A query-string integer written in ASCII digits, nothing else."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if type(value) is not str or _DIGITS.fullmatch(value) is None:
            raise ValidationError("an integer in ASCII digits (0-9), at most 19 of them")
        return super()._deserialize(value, attr, data, **kwargs)


class Clean(validate.Validator):
    """1..``most`` characters, none of them a control character or a surrogate."""

    def __init__(self, most: int) -> None:
        self.most = most

    def __call__(self, value: Any) -> Any:
        if not is_name(value, self.most):
            raise ValidationError(f"1-{self.most} characters, no control characters")
        return value


class Sentence(validate.Validator):
    """At most ``most`` characters of valid Unicode text on one line (may be empty)."""

    def __init__(self, most: int) -> None:
        self.most = most

    def __call__(self, value: Any) -> Any:
        if len(value) > self.most:
            raise ValidationError(f"at most {self.most} characters")
        if not safe_text(value) or (value and not is_name(value, self.most)):
            raise ValidationError("no control characters, NUL or lone surrogates")
        return value


def _clean(most: int) -> list[validate.Validator]:
    """Clean text of 1..``most`` characters (the Length is what OpenAPI publishes)."""
    return [validate.Length(1, most), Clean(most)]


_id = _clean(MAX_ID_LENGTH)


def _limit() -> fields.Integer:
    return AsciiInt(load_default=DEFAULT_PAGE, validate=validate.Range(1, MAX_PAGE))


# --- requests ------------------------------------------------------------------------


class LogQuerySchema(Schema):
    """``GET /v1/admin/log``: a page of logged requests, newest first."""

    limit = _limit()
    before = AsciiInt(validate=validate.Range(1, 2**63 - 1))


class DataboxQuerySchema(Schema):
    """``GET /v1/admin/databox``: stuck entries, oldest first, filtered."""

    limit = _limit()
    offset = AsciiInt(load_default=0, validate=validate.Range(0, MAX_OFFSET))
    code = fields.String(validate=_clean(MAX_CODE))
    device_id = fields.String(validate=_id)
    min_age_s = AsciiInt(validate=validate.Range(0, MAX_AGE_S))


class CommandsQuerySchema(Schema):
    """``GET /v1/admin/devices/<id>/commands``: a page of commands, newest first."""

    limit = _limit()
    before = fields.String(validate=_id)


class CommandRequestSchema(Schema):
    """``POST /v1/admin/devices/<id>/commands``: what to do with which parked entry."""

    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    op_id = fields.String(required=True, validate=_id)
    reason = fields.String(
        load_default="", validate=[validate.Length(max=MAX_REASON), Sentence(MAX_REASON)]
    )

    @validates_schema
    def _reason_for_discard(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("kind") == "discard" and not data.get("reason", "").strip():
            raise ValidationError("a discard needs a reason", "reason")


# --- answers -------------------------------------------------------------------------


class LogEntrySchema(Schema):
    """One logged admin request."""

    id = fields.Integer(required=True)
    at = fields.DateTime(required=True)
    admin_id = fields.String(required=True, allow_none=True)
    remote_addr = fields.String(required=True)
    method = fields.String(required=True)
    path = fields.String(required=True)
    status = fields.Integer(required=True)
    code = fields.String(required=True, allow_none=True)


class LogPageSchema(Schema):
    """A page of the admin request log; ``next_before`` asks for the page after it."""

    entries = fields.List(fields.Nested(LogEntrySchema), required=True)
    next_before = fields.Integer(required=True, allow_none=True)


class StuckEntrySchema(Schema):
    """A parked entry somewhere in the fleet; ``age_s`` is its age now (server's estimate)."""

    device_id = fields.String(required=True)
    op_id = fields.String(required=True)
    collection = fields.String(required=True)
    record_id = fields.String(required=True)
    code = fields.String(required=True)
    message = fields.String(required=True)
    age_s = fields.Integer(required=True)
    reported_age_s = fields.Integer(required=True)
    reported_at = fields.DateTime(required=True)
    parked_at = fields.DateTime(required=True)


class ReasonTotalSchema(Schema):
    """Parked entries of one reason across the fleet, and on how many devices."""

    reason = fields.String(required=True)
    parked = fields.Integer(required=True)
    devices = fields.Integer(required=True)


class DataboxPageSchema(Schema):
    """The fleet data box: totals by reason, and a page of stuck entries."""

    reasons = fields.List(fields.Nested(ReasonTotalSchema), required=True)
    entries = fields.List(fields.Nested(StuckEntrySchema), required=True)
    next_offset = fields.Integer(required=True, allow_none=True)


class AdminCommandSchema(Schema):
    """A command and what became of it."""

    command_id = fields.String(required=True)
    device_id = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    op_id = fields.String(required=True)
    reason = fields.String(required=True)
    state = fields.String(
        required=True, validate=validate.OneOf(("pending", "delivered", "done", "failed"))
    )
    created_by = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    delivered_at = fields.DateTime(required=True, allow_none=True)
    deliveries = fields.Integer(required=True)
    outcome_at = fields.DateTime(required=True, allow_none=True)
    outcome_code = fields.String(required=True, allow_none=True)
    outcome_message = fields.String(required=True, allow_none=True)
    new_op_id = fields.String(required=True, allow_none=True)


class CommandsPageSchema(Schema):
    """A page of a device's commands, newest first."""

    commands = fields.List(fields.Nested(AdminCommandSchema), required=True)
    next_before = fields.String(required=True, allow_none=True)

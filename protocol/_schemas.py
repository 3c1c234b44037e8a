"""marshmallow schemas: the declaration of every wire message.

The OpenAPI document (server_sync/openapi.py) is generated from them. The code that
runs is ``protocol._decode``, which accepts and refuses exactly what these accept and
refuse, with the same messages (tests/protocol/test_one_decoder.py); marshmallow is
~9x slower on a full batch (docs/decisions.md, "One decoder per message").
"""

from __future__ import annotations

from typing import Any

from marshmallow import (
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from ._decode import incoherence, name_message
from ._text import is_name
from .constants import (
    MAX_ENTRIES_PER_BATCH,
    MAX_FIELDS_PER_ENTRY,
    MAX_ID_LENGTH,
    MAX_NAME_LENGTH,
    MAX_SCHEMA_VERSION,
    MAX_SEQ,
    MAX_TIME_MS,
    MAX_VERSION_LENGTH,
)
from .model import KINDS, STATUSES, Ack, Batch, Entry, Result

#: Entries in one local transaction: it travels in one batch, so at most a batch's worth.
_tx_count = validate.Range(min=1, max=MAX_ENTRIES_PER_BATCH)


class _Clean(validate.Validator):
    """1..``most`` characters, none of them a control character or a surrogate."""

    def __init__(self, most: int) -> None:
        self.most = most

    def __call__(self, value: Any) -> Any:
        if not is_name(value, self.most):
            raise ValidationError(name_message(self.most))
        return value


_name = _Clean(MAX_NAME_LENGTH)
_id = _Clean(MAX_ID_LENGTH)


class EntrySchema(Schema):
    """One entry on the wire."""

    op_id = fields.String(required=True, validate=_id)
    device_id = fields.String(required=True, validate=_id)
    seq = fields.Integer(required=True, strict=True, validate=validate.Range(1, MAX_SEQ))
    tx_id = fields.String(required=True, validate=_id)
    tx_count = fields.Integer(required=True, strict=True, validate=_tx_count)
    hlc = fields.String(required=True, validate=_id)
    collection = fields.String(required=True, validate=_name)
    record_id = fields.String(required=True, validate=_name)
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    fields_ = fields.Dict(
        data_key="fields",
        keys=fields.String(validate=_name),
        values=fields.Raw(allow_none=True),
        required=True,
        validate=validate.Length(max=MAX_FIELDS_PER_ENTRY),
    )
    schema_version = fields.Integer(
        required=True, strict=True, validate=validate.Range(1, MAX_SCHEMA_VERSION)
    )

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> Entry:
        data["fields"] = data.pop("fields_")
        return Entry(**data)


class BatchSchema(Schema):
    """A batch on the wire: whole transactions of one device, in seq order."""

    protocol_version = fields.String(
        required=True, validate=validate.Length(min=1, max=MAX_VERSION_LENGTH)
    )
    batch_id = fields.String(required=True, validate=_id)
    device_id = fields.String(required=True, validate=_id)
    entries = fields.List(
        fields.Nested(EntrySchema),
        required=True,
        validate=validate.Length(min=1, max=MAX_ENTRIES_PER_BATCH),
    )

    @validates_schema
    def _coherent(self, data: dict[str, Any], **_: Any) -> None:
        error = incoherence(data.get("device_id"), data.get("entries", []))
        if error is not None:
            raise ValidationError(error)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> Batch:
        data["entries"] = tuple(data["entries"])
        return Batch(**data)


class ResultSchema(Schema):
    """One per-entry verdict on the wire."""

    op_id = fields.String(required=True, validate=_id)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    code = fields.String(load_default=None, allow_none=True)
    field = fields.String(load_default=None, allow_none=True)
    message = fields.String(load_default=None, allow_none=True)
    original = fields.Nested("ResultSchema", load_default=None, allow_none=True)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> Result:
        return Result(**data)


class AckSchema(Schema):
    """The server's answer to a batch."""

    batch_id = fields.String(required=True, validate=_id)
    results = fields.List(fields.Nested(ResultSchema), required=True)
    server_time_ms = fields.Integer(
        load_default=None, allow_none=True, strict=True, validate=validate.Range(0, MAX_TIME_MS)
    )

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> Ack:
        return Ack(data["batch_id"], tuple(data["results"]), data["server_time_ms"])

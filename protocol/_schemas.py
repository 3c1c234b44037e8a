"""marshmallow schemas: the only code turning wire dicts into protocol values."""

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

from .constants import MAX_ENTRIES_PER_BATCH, MAX_FIELDS_PER_ENTRY, MAX_NAME_LENGTH
from .model import KINDS, STATUSES, Ack, Batch, Entry, Result

_name = validate.Length(min=1, max=MAX_NAME_LENGTH)
_id = validate.Length(min=1, max=64)


class EntrySchema(Schema):
    """One entry on the wire."""

    op_id = fields.String(required=True, validate=_id)
    device_id = fields.String(required=True, validate=_id)
    seq = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    tx_id = fields.String(required=True, validate=_id)
    hlc = fields.String(required=True, validate=validate.Length(min=1, max=64))
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
    schema_version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> Entry:
        data["fields"] = data.pop("fields_")
        return Entry(**data)


class BatchSchema(Schema):
    """A batch on the wire: whole transactions of one device, in seq order."""

    protocol_version = fields.String(required=True, validate=validate.Length(min=1, max=16))
    batch_id = fields.String(required=True, validate=_id)
    device_id = fields.String(required=True, validate=_id)
    entries = fields.List(
        fields.Nested(EntrySchema),
        required=True,
        validate=validate.Length(min=1, max=MAX_ENTRIES_PER_BATCH),
    )

    @validates_schema
    def _coherent(self, data: dict[str, Any], **_: Any) -> None:
        entries: list[Entry] = data.get("entries", [])
        device_id = data.get("device_id")
        for i, entry in enumerate(entries):
            if entry.device_id != device_id:
                raise ValidationError({"entries": {i: ["device_id differs from the batch's"]}})
        if len({e.op_id for e in entries}) != len(entries):
            raise ValidationError({"entries": ["op_id repeated within the batch"]})
        seqs = [e.seq for e in entries]
        if seqs != sorted(set(seqs)):
            raise ValidationError({"entries": ["seq must strictly increase"]})
        seen: set[str] = set()
        for prev, entry in zip([None, *entries], entries, strict=False):
            if prev is not None and entry.tx_id != prev.tx_id and entry.tx_id in seen:
                raise ValidationError({"entries": ["a transaction's entries must be contiguous"]})
            seen.add(entry.tx_id)

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

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> Ack:
        return Ack(batch_id=data["batch_id"], results=tuple(data["results"]))

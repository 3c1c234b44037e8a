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

from ._text import is_name
from .constants import (
    MAX_ENTRIES_PER_BATCH,
    MAX_FIELDS_PER_ENTRY,
    MAX_NAME_LENGTH,
    MAX_SCHEMA_VERSION,
    MAX_SEQ,
    MAX_TIME_MS,
)
from .model import KINDS, STATUSES, Ack, Batch, Entry, Result

#: Longest op_id, device_id, tx_id, batch_id and HLC stamp.
MAX_ID_LENGTH = 64
#: Entries in one local transaction: it travels in one batch, so at most a batch's worth.
_tx_count = validate.Range(min=1, max=MAX_ENTRIES_PER_BATCH)


class _Clean(validate.Validator):
    """1..``most`` characters, none of them a control character or a surrogate."""

    def __init__(self, most: int) -> None:
        self.most = most

    def __call__(self, value: Any) -> Any:
        if not is_name(value, self.most):
            raise ValidationError(f"1-{self.most} characters, no control characters")
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
        error = _incoherence(data.get("device_id"), data.get("entries", []))
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


def _incoherence(device_id: object, entries: list[Entry]) -> dict[str, Any] | None:
    """Why a batch's entries do not hang together, or None if they do."""
    for i, entry in enumerate(entries):
        if entry.device_id != device_id:
            return {"entries": {i: ["device_id differs from the batch's"]}}
    if len({e.op_id for e in entries}) != len(entries):
        return {"entries": ["op_id repeated within the batch"]}
    seqs = [e.seq for e in entries]
    if seqs != sorted(set(seqs)):
        return {"entries": ["seq must strictly increase"]}
    seen: set[str] = set()
    for prev, entry in zip([None, *entries], entries, strict=False):
        if prev is not None and entry.tx_id != prev.tx_id and entry.tx_id in seen:
            return {"entries": ["a transaction's entries must be contiguous"]}
        seen.add(entry.tx_id)
    return _incomplete(entries)


def _incomplete(entries: list[Entry]) -> dict[str, Any] | None:
    """Why a transaction in ``entries`` is not carried whole, or None if each one is."""
    start = 0
    while start < len(entries):
        end = start + 1
        while end < len(entries) and entries[end].tx_id == entries[start].tx_id:
            end += 1
        counts = {e.tx_count for e in entries[start:end]}
        where = f"the transaction of entries {start}..{end - 1}"
        if len(counts) > 1:
            return {"entries": [f"{where} disagree on tx_count ({sorted(counts)})"]}
        (count,) = counts
        if count != end - start:
            return {
                "entries": [
                    f"{where} is not whole: tx_count is {count}, the batch carries "
                    f"{end - start} (a batch must carry each transaction whole)"
                ]
            }
        start = end
    return None


# -- fast paths ---------------------------------------------------------------------
#
# marshmallow costs ~100 us per entry, most of a batch's decoding. The functions
# below accept only input that is plainly valid under the schemas above (exact key
# sets, exact types, the same limits) and build the same values; anything else
# returns None and the caller runs the schema, which accepts or explains as before.
# So they can only be narrower than the schemas, never wider; a property test
# checks they agree wherever they answer.

_ENTRY_KEYS = frozenset(EntrySchema().fields.keys() - {"fields_"} | {"fields"})
_BATCH_KEYS = frozenset(("protocol_version", "batch_id", "device_id", "entries"))
_RESULT_KEYS = frozenset(("op_id", "status", "code", "field", "message", "original"))
_ACK_KEYS = frozenset(("batch_id", "results"))
_TIMED_ACK_KEYS = _ACK_KEYS | {"server_time_ms"}


def _text(value: object, most: int) -> bool:
    return type(value) is str and 0 < len(value) <= most


def _within(value: object, most: int) -> bool:
    return type(value) is int and 1 <= value <= most


def fast_entry(raw: object) -> Entry | None:
    """The Entry ``EntrySchema`` would load from ``raw``, or None to ask the schema."""
    if type(raw) is not dict or raw.keys() != _ENTRY_KEYS:
        return None
    values = raw["fields"]
    if not (
        is_name(raw["op_id"], MAX_ID_LENGTH)
        and is_name(raw["device_id"], MAX_ID_LENGTH)
        and is_name(raw["tx_id"], MAX_ID_LENGTH)
        and _within(raw["tx_count"], MAX_ENTRIES_PER_BATCH)
        and is_name(raw["hlc"], MAX_ID_LENGTH)
        and is_name(raw["collection"], MAX_NAME_LENGTH)
        and is_name(raw["record_id"], MAX_NAME_LENGTH)
        and type(raw["kind"]) is str
        and raw["kind"] in KINDS
        and _within(raw["seq"], MAX_SEQ)
        and _within(raw["schema_version"], MAX_SCHEMA_VERSION)
        and type(values) is dict
        and len(values) <= MAX_FIELDS_PER_ENTRY
        and all(is_name(k, MAX_NAME_LENGTH) for k in values)
    ):
        return None
    return Entry(
        op_id=raw["op_id"],
        device_id=raw["device_id"],
        seq=raw["seq"],
        tx_id=raw["tx_id"],
        tx_count=raw["tx_count"],
        hlc=raw["hlc"],
        collection=raw["collection"],
        record_id=raw["record_id"],
        kind=raw["kind"],
        fields=dict(values),
        schema_version=raw["schema_version"],
    )


def fast_batch(raw: object) -> Batch | None:
    """The Batch ``BatchSchema`` would load from ``raw``, or None to ask the schema."""
    if type(raw) is not dict or raw.keys() != _BATCH_KEYS:
        return None
    items = raw["entries"]
    if not (
        _text(raw["protocol_version"], 16)
        and is_name(raw["batch_id"], MAX_ID_LENGTH)
        and is_name(raw["device_id"], MAX_ID_LENGTH)
        and type(items) is list
        and 1 <= len(items) <= MAX_ENTRIES_PER_BATCH
    ):
        return None
    entries = []
    for item in items:
        entry = fast_entry(item)
        if entry is None:
            return None
        entries.append(entry)
    if _incoherence(raw["device_id"], entries) is not None:
        return None
    return Batch(raw["protocol_version"], raw["batch_id"], raw["device_id"], tuple(entries))


def fast_result(raw: object, depth: int = 0) -> Result | None:
    """The Result ``ResultSchema`` would load from ``raw``, or None to ask the schema."""
    if type(raw) is not dict or not raw.keys() <= _RESULT_KEYS or depth > 4:
        return None
    status = raw.get("status")
    if not (
        is_name(raw.get("op_id"), MAX_ID_LENGTH) and type(status) is str and status in STATUSES
    ):
        return None
    texts = [raw.get(k) for k in ("code", "field", "message")]
    if not all(t is None or type(t) is str for t in texts):
        return None
    original = raw.get("original")
    if original is not None:
        original = fast_result(original, depth + 1)
        if original is None:
            return None
    return Result(raw["op_id"], status, texts[0], texts[1], texts[2], original)


def fast_ack(raw: object) -> Ack | None:
    """The Ack ``AckSchema`` would load from ``raw``, or None to ask the schema."""
    if type(raw) is not dict or raw.keys() not in (_ACK_KEYS, _TIMED_ACK_KEYS):
        return None
    items, server_time = raw["results"], raw.get("server_time_ms")
    if not (
        is_name(raw["batch_id"], MAX_ID_LENGTH)
        and type(items) is list
        and (server_time is None or (type(server_time) is int and 0 <= server_time <= MAX_TIME_MS))
    ):
        return None
    results = []
    for item in items:
        result = fast_result(item)
        if result is None:
            return None
        results.append(result)
    return Ack(raw["batch_id"], tuple(results), server_time)

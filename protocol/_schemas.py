"""marshmallow schemas: the declaration of every wire message.

The OpenAPI document (server_sync/openapi.py) is generated from them. The code that
runs is ``protocol._decode``, which accepts and refuses exactly what these accept and
refuse, with the same messages (tests/protocol/test_one_decoder.py); marshmallow is
~9x slower on a full batch (docs/decisions.md, "One decoder per message").
"""

from __future__ import annotations

from typing import Any

from marshmallow import (
    INCLUDE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from ._decode import batch_incoherence, name_message, report_incoherence, text_message
from ._text import is_name, safe_text
from .constants import (
    MAX_COMMANDS_PER_ACK,
    MAX_COUNT,
    MAX_ENTRIES_PER_BATCH,
    MAX_FIELDS_PER_ENTRY,
    MAX_ID_LENGTH,
    MAX_JOURNAL_EVENTS_PER_BATCH,
    MAX_MESSAGE_LENGTH,
    MAX_NAME_LENGTH,
    MAX_OUTCOMES_PER_REPORT,
    MAX_PARKED_PER_REPORT,
    MAX_REASONS_PER_REPORT,
    MAX_SCHEMA_VERSION,
    MAX_SEQ,
    MAX_TIME_MS,
    MAX_VERSION_LENGTH,
)
from .model import (
    BOX_ACTIONS,
    EVENT_KINDS,
    KINDS,
    LINK_SOURCES,
    OUTCOME_STATUSES,
    REFUSED_CODES,
    STATUSES,
    Ack,
    AttemptEvent,
    Batch,
    Command,
    Databox,
    DataboxCounts,
    DataboxEvent,
    Entry,
    Event,
    LinkEvent,
    Outcome,
    ParkedEntry,
    RefusedEvent,
    Report,
    Result,
    StatusEvent,
)

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


class _Text(validate.Validator):
    """At most ``most`` characters of Unicode text (no lone surrogate, no NUL)."""

    def __init__(self, most: int) -> None:
        self.most = most

    def __call__(self, value: Any) -> Any:
        if len(value) > self.most or not safe_text(value):
            raise ValidationError(text_message(self.most))
        return value


_name = _Clean(MAX_NAME_LENGTH)
_id = _Clean(MAX_ID_LENGTH)
_message = _Text(MAX_MESSAGE_LENGTH)
_time = validate.Range(0, MAX_TIME_MS)
_count = validate.Range(0, MAX_COUNT)


class _Bool(fields.Boolean):
    """``true`` or ``false`` and nothing else (marshmallow's Boolean also takes 1 and "yes")."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if type(value) is not bool:
            raise self.make_error("invalid")
        return value


def _int(check: validate.Validator, **kwargs: Any) -> fields.Integer:
    """A required strict integer (``**kwargs`` may make it optional)."""
    return fields.Integer(**{"required": True, **kwargs}, strict=True, validate=check)


def _str(check: validate.Validator, **kwargs: Any) -> fields.String:
    """A required string (``**kwargs`` may make it optional)."""
    return fields.String(**{"required": True, **kwargs}, validate=check)


def _optional_str(check: validate.Validator) -> fields.String:
    """An optional string; null reads as absent."""
    return _str(check, required=False, load_default=None, allow_none=True)


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
        validate=validate.Length(max=MAX_ENTRIES_PER_BATCH),
        metadata={"description": "at least one entry, unless the batch carries a report"},
    )
    report = fields.Nested(
        "ReportSchema",
        load_default=None,
        metadata={"description": "protocol 2.1: the device's journal, data box and outcomes"},
    )

    @validates_schema
    def _coherent(self, data: dict[str, Any], **_: Any) -> None:
        error = batch_incoherence(
            data["protocol_version"], data["device_id"], data["entries"], data["report"]
        )
        if error is not None:
            raise ValidationError(error)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> Batch:
        data["entries"] = tuple(data["entries"])
        return Batch(**data)


class _KindSchema(Schema):
    """The ``kind`` of a journal event, which picks the schema of the rest."""

    class Meta:
        unknown = INCLUDE

    kind = fields.String(required=True, validate=validate.OneOf(EVENT_KINDS))


class _EventSchema(Schema):
    """Members every journal event has."""

    id = _str(_id)
    at_ms = _int(_time)


class LinkEventSchema(_EventSchema):
    """A channel went up or down."""

    kind = _str(validate.OneOf(("link",)))
    channel = _str(_id)
    up = _Bool(required=True)
    source = _str(validate.OneOf(LINK_SOURCES))

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> LinkEvent:
        return LinkEvent(**data)


class AttemptEventSchema(_EventSchema):
    """One sync attempt and how it ended (``ok`` or a failure reason)."""

    kind = _str(validate.OneOf(("attempt",)))
    channel = _str(_id)
    started_ms = _int(_time)
    ended_ms = _int(_time)
    entries = _int(_count)
    bytes_sent = _int(_count)
    bytes_received = _int(_count)
    outcome = _str(_id)
    server_time_ms = _int(_time, required=False, load_default=None, allow_none=True)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> AttemptEvent:
        return AttemptEvent(**data)


class StatusEventSchema(_EventSchema):
    """The device's queue depth, free storage, app and protocol version."""

    kind = _str(validate.OneOf(("status",)))
    queue_depth = _int(_count)
    free_bytes = _int(_count)
    app_version = _str(_id)
    protocol_version = _str(_Clean(MAX_VERSION_LENGTH))

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> StatusEvent:
        return StatusEvent(**data)


class RefusedEventSchema(_EventSchema):
    """The device refused to record an entry."""

    kind = _str(validate.OneOf(("refused",)))
    code = _str(validate.OneOf(REFUSED_CODES))
    free_bytes = _int(_count)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> RefusedEvent:
        return RefusedEvent(**data)


class DataboxEventSchema(_EventSchema):
    """A parked entry discarded or resubmitted."""

    kind = _str(validate.OneOf(("databox",)))
    action = _str(validate.OneOf(BOX_ACTIONS))
    op_id = _str(_id)
    reason = _str(_id)
    new_op_id = _optional_str(_id)
    command_id = _optional_str(_id)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> DataboxEvent:
        return DataboxEvent(**data)


#: The schema of each kind of journal event.
EVENT_SCHEMAS: dict[str, type[Schema]] = {
    "link": LinkEventSchema,
    "attempt": AttemptEventSchema,
    "status": StatusEventSchema,
    "refused": RefusedEventSchema,
    "databox": DataboxEventSchema,
}
_EVENT_LOADERS = {kind: schema() for kind, schema in EVENT_SCHEMAS.items()}


class EventField(fields.Field[Event]):
    """One journal event: its ``kind`` picks the schema that loads the rest
    (the OpenAPI document shows it as ``oneOf`` those schemas)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        try:
            kind = _KindSchema().load(value)["kind"]
            return _EVENT_LOADERS[kind].load(value)
        except ValidationError as exc:
            raise ValidationError(exc.messages) from exc


class DataboxCountsSchema(Schema):
    """Entries not yet acknowledged, by state."""

    pending = _int(_count)
    in_flight = _int(_count)
    parked = _int(_count)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> DataboxCounts:
        return DataboxCounts(**data)


class ParkedEntrySchema(Schema):
    """One parked entry as the device's data box shows it."""

    op_id = _str(_id)
    collection = _str(_name)
    record_id = _str(_name)
    code = _str(_id)
    message = _str(_message)
    age_s = _int(_count)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> ParkedEntry:
        return ParkedEntry(**data)


class DataboxSchema(Schema):
    """The device's data box: counts, parked counts by reason, the parked entries."""

    counts = fields.Nested(DataboxCountsSchema, required=True)
    reasons = fields.Dict(
        keys=fields.String(validate=_id),
        values=fields.Integer(strict=True, validate=_count),
        required=True,
        validate=validate.Length(max=MAX_REASONS_PER_REPORT),
    )
    parked = fields.List(
        fields.Nested(ParkedEntrySchema),
        required=True,
        validate=validate.Length(max=MAX_PARKED_PER_REPORT),
    )

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> Databox:
        return Databox(data["counts"], data["reasons"], tuple(data["parked"]))


class OutcomeSchema(Schema):
    """How the device carried out one command."""

    command_id = _str(_id)
    status = _str(validate.OneOf(OUTCOME_STATUSES))
    code = _optional_str(_id)
    message = _optional_str(_message)
    new_op_id = _optional_str(_id)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> Outcome:
        return Outcome(**data)


class ReportSchema(Schema):
    """What a batch tells the server about its device (protocol 2.1)."""

    sent_ms = _int(_time)
    journal = fields.List(
        EventField(), required=True, validate=validate.Length(max=MAX_JOURNAL_EVENTS_PER_BATCH)
    )
    databox = fields.Nested(DataboxSchema, required=True)
    outcomes = fields.List(
        fields.Nested(OutcomeSchema),
        required=True,
        validate=validate.Length(max=MAX_OUTCOMES_PER_REPORT),
    )

    @validates_schema
    def _coherent(self, data: dict[str, Any], **_: Any) -> None:
        error = report_incoherence(data["journal"])
        if error is not None:
            raise ValidationError(error)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> Report:
        return Report(
            data["sent_ms"], tuple(data["journal"]), data["databox"], tuple(data["outcomes"])
        )


class CommandSchema(Schema):
    """An admin's order to a device about one parked entry."""

    command_id = _str(_id)
    kind = _str(validate.OneOf(BOX_ACTIONS))
    op_id = _str(_id)
    reason = _str(_id)

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> Command:
        return Command(**data)


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
    commands = fields.List(
        fields.Nested(CommandSchema),
        load_default=list,
        validate=validate.Length(max=MAX_COMMANDS_PER_ACK),
        metadata={"description": "2.1: every command the device has not reported yet"},
    )

    @post_load
    def _make(self, data: dict[str, Any], **_: Any) -> Ack:
        return Ack(
            data["batch_id"],
            tuple(data["results"]),
            data["server_time_ms"],
            tuple(data["commands"]),
        )

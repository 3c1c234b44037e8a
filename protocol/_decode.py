"""The one decoder of wire messages: parsed JSON in, protocol values out, or why not.

It accepts and refuses exactly what the marshmallow schemas in ``_schemas`` do, and
explains a refusal with the same error dict (same paths, same messages):
tests/protocol/test_one_decoder.py proves it on a committed corpus and with
Hypothesis. The schemas stay the declaration the OpenAPI document is generated
from; this module is what runs, because marshmallow takes ~9x longer on a full
batch (docs/performance.md, "One decoder").

Each ``_check_*`` returns None for a valid value or the list of messages the schema
field would give; nothing here builds an error dict unless something is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

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
    MAX_VERSION_DIGITS,
    MAX_VERSION_LENGTH,
    REPORT_MINOR,
)
from .errors import ProtocolError
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

Errors = dict[Any, Any]
Check = Callable[[object], list[str] | None]

# marshmallow's words, so a refusal reads the same whichever side explains it.
REQUIRED = "Missing data for required field."
NULL = "Field may not be null."
UNKNOWN = "Unknown field."
NOT_OBJECT = "Invalid input type."
NOT_STRING = "Not a valid string."
NOT_INTEGER = "Not a valid integer."
NOT_MAPPING = "Not a valid mapping type."
NOT_LIST = "Not a valid list."
NOT_BOOLEAN = "Not a valid boolean."


def name_message(most: int) -> str:
    """What an id or a name that is not 1..``most`` clean characters is told."""
    return f"1-{most} characters, no control characters"


def text_message(most: int) -> str:
    """What a human message that is too long or not valid text is told."""
    return f"at most {most} characters of text, no NUL or lone surrogate"


def length_message(most: int) -> str:
    """What a list or mapping longer than ``most`` is told."""
    return f"Longer than maximum length {most}."


def range_message(low: int, high: int) -> str:
    """What an integer outside ``low..high`` is told."""
    return f"Must be greater than or equal to {low} and less than or equal to {high}."


def one_of_message(choices: tuple[str, ...]) -> str:
    """What a string outside ``choices`` is told."""
    return f"Must be one of: {', '.join(choices)}."


def _name(most: int) -> Check:
    message = [name_message(most)]

    def check(value: object) -> list[str] | None:
        if is_name(value, most):
            return None
        if value is None:
            return [NULL]
        return [NOT_STRING] if type(value) is not str else message

    return check


def _integer(low: int, high: int, nullable: bool = False) -> Check:
    message = [range_message(low, high)]

    def check(value: object) -> list[str] | None:
        if type(value) is int:
            return None if low <= value <= high else message
        if value is None:
            return None if nullable else [NULL]
        return [NOT_INTEGER]

    return check


def _one_of(choices: tuple[str, ...]) -> Check:
    message = [one_of_message(choices)]

    def check(value: object) -> list[str] | None:
        if type(value) is str:
            return None if value in choices else message
        return [NULL] if value is None else [NOT_STRING]

    return check


def _text(most: int) -> Check:
    message = [text_message(most)]

    def check(value: object) -> list[str] | None:
        if type(value) is str:
            return None if len(value) <= most and safe_text(value) else message
        return [NULL] if value is None else [NOT_STRING]

    return check


def _optional(check: Check) -> Check:
    """``check``, with null read as absent."""
    return lambda value: None if value is None else check(value)


def _bool(value: object) -> list[str] | None:
    if type(value) is bool:
        return None
    return [NULL] if value is None else [NOT_BOOLEAN]


def _version(value: object) -> list[str] | None:
    if type(value) is str:
        if 0 < len(value) <= MAX_VERSION_LENGTH:
            return None
        return [f"Length must be between 1 and {MAX_VERSION_LENGTH}."]
    return [NULL] if value is None else [NOT_STRING]


def _optional_text(value: object) -> list[str] | None:
    return None if value is None or type(value) is str else [NOT_STRING]


def _fields(value: object) -> Any:
    """None if ``value`` is a valid ``fields`` mapping, else its errors (list or dict)."""
    if type(value) is not dict:
        return [NULL] if value is None else [NOT_MAPPING]
    bad = {k: {"key": _check_name(k)} for k in value if not is_name(k, MAX_NAME_LENGTH)}
    if bad:
        return bad
    if len(value) > MAX_FIELDS_PER_ENTRY:
        return [length_message(MAX_FIELDS_PER_ENTRY)]
    return None


_check_id = _name(MAX_ID_LENGTH)
_check_name = _name(MAX_NAME_LENGTH)

_ENTRY: dict[str, Check] = {
    "op_id": _check_id,
    "device_id": _check_id,
    "seq": _integer(1, MAX_SEQ),
    "tx_id": _check_id,
    "tx_count": _integer(1, MAX_ENTRIES_PER_BATCH),
    "hlc": _check_id,
    "collection": _check_name,
    "record_id": _check_name,
    "kind": _one_of(KINDS),
    "fields": _fields,
    "schema_version": _integer(1, MAX_SCHEMA_VERSION),
}
_ENTRY_KEYS = frozenset(_ENTRY)
_ENTRY_CHECKS = tuple(_ENTRY.items())
_BATCH: dict[str, Check] = {
    "protocol_version": _version,
    "batch_id": _check_id,
    "device_id": _check_id,
}
_RESULT: dict[str, Check] = {
    "op_id": _check_id,
    "status": _one_of(STATUSES),
    "code": _optional_text,
    "field": _optional_text,
    "message": _optional_text,
}
_RESULT_REQUIRED = ("op_id", "status")
_ACK_TIME = _integer(0, MAX_TIME_MS, nullable=True)

_check_time = _integer(0, MAX_TIME_MS)
_check_count = _integer(0, MAX_COUNT)
_check_message = _text(MAX_MESSAGE_LENGTH)
_optional_id = _optional(_check_id)

#: Members of every journal event, then each kind's own (the schemas in _schemas.py).
_EVENT_HEAD: dict[str, Check] = {"id": _check_id, "at_ms": _check_time}
_EVENTS: dict[str, tuple[type[Any], dict[str, Check], tuple[str, ...]]] = {
    "link": (
        LinkEvent,
        {"channel": _check_id, "up": _bool, "source": _one_of(LINK_SOURCES)},
        (),
    ),
    "attempt": (
        AttemptEvent,
        {
            "channel": _check_id,
            "started_ms": _check_time,
            "ended_ms": _check_time,
            "entries": _check_count,
            "bytes_sent": _check_count,
            "bytes_received": _check_count,
            "outcome": _check_id,
            "server_time_ms": _integer(0, MAX_TIME_MS, nullable=True),
        },
        ("server_time_ms",),
    ),
    "status": (
        StatusEvent,
        {
            "queue_depth": _check_count,
            "free_bytes": _check_count,
            "app_version": _check_id,
            "protocol_version": _name(MAX_VERSION_LENGTH),
        },
        (),
    ),
    "refused": (RefusedEvent, {"code": _one_of(REFUSED_CODES), "free_bytes": _check_count}, ()),
    "databox": (
        DataboxEvent,
        {
            "action": _one_of(BOX_ACTIONS),
            "op_id": _check_id,
            "reason": _check_id,
            "new_op_id": _optional_id,
            "command_id": _optional_id,
        },
        ("new_op_id", "command_id"),
    ),
}
_EVENT_KIND = _one_of(EVENT_KINDS)
_COUNTS: dict[str, Check] = {
    "pending": _check_count,
    "in_flight": _check_count,
    "parked": _check_count,
}
_PARKED: dict[str, Check] = {
    "op_id": _check_id,
    "collection": _check_name,
    "record_id": _check_name,
    "code": _check_id,
    "message": _check_message,
    "age_s": _check_count,
}
_OUTCOME: dict[str, Check] = {
    "command_id": _check_id,
    "status": _one_of(OUTCOME_STATUSES),
    "code": _optional_id,
    "message": _optional(_check_message),
    "new_op_id": _optional_id,
}
_COMMAND: dict[str, Check] = {
    "command_id": _check_id,
    "kind": _one_of(BOX_ACTIONS),
    "op_id": _check_id,
    "reason": _check_id,
}


def load_batch(raw: object) -> Batch:
    """The Batch ``BatchSchema`` loads from ``raw``; else ProtocolError with its errors."""
    if type(raw) is not dict:
        raise _refused("batch", {"_schema": [NOT_OBJECT]})
    errors = _members(raw, _BATCH, required=tuple(_BATCH), extra=("entries", "report"))
    entries, entry_errors = _entries(raw.get("entries", _ABSENT))
    if entry_errors is not None:
        errors["entries"] = entry_errors
    report = None
    if raw.get("report") is not None:
        report, report_errors = _report(raw["report"])
        if report_errors is not None:
            errors["report"] = report_errors
    if errors:
        raise _refused("batch", errors)
    version, device_id = raw["protocol_version"], raw["device_id"]
    incoherent = batch_incoherence(version, device_id, entries, report)
    if incoherent is not None:
        raise _refused("batch", incoherent)
    return Batch(version, raw["batch_id"], device_id, tuple(entries), report)


def load_ack(raw: object) -> Ack:
    """The Ack ``AckSchema`` loads from ``raw``; else ProtocolError with its errors."""
    if type(raw) is not dict:
        raise _refused("ack", {"_schema": [NOT_OBJECT]})
    errors = _members(
        raw, {"batch_id": _check_id}, ("batch_id",), ("results", "server_time_ms", "commands")
    )
    server_time = raw.get("server_time_ms")
    time_error = _ACK_TIME(server_time)
    if time_error is not None:
        errors["server_time_ms"] = time_error
    results: list[Result] = []
    items = raw.get("results", _ABSENT)
    if items is _ABSENT:
        errors["results"] = [REQUIRED]
    elif type(items) is not list:
        errors["results"] = [NULL] if items is None else [NOT_LIST]
    else:
        found: Errors = {}
        for i, item in enumerate(items):
            result, why = _result(item)
            if why is not None:
                found[i] = why
            elif result is not None:
                results.append(result)
        if found:
            errors["results"] = found
    commands: list[Command] = []
    if "commands" in raw:
        commands, command_errors = _list(raw["commands"], _command, MAX_COMMANDS_PER_ACK)
        if command_errors is not None:
            errors["commands"] = command_errors
    if errors:
        raise _refused("ack", errors)
    return Ack(raw["batch_id"], tuple(results), server_time, tuple(commands))


_ABSENT = object()


def _refused(what: str, errors: Errors) -> ProtocolError:
    return ProtocolError(f"malformed {what}", errors)


def _members(
    raw: dict[str, Any], checks: dict[str, Check], required: tuple[str, ...], extra: tuple[str, ...]
) -> Errors:
    """Errors of ``raw``'s checked members, missing required ones and unknown keys."""
    errors: Errors = {}
    for name, check in checks.items():
        if name in raw:
            why = check(raw[name])
            if why is not None:
                errors[name] = why
        elif name in required:
            errors[name] = [REQUIRED]
    for key in raw:
        if key not in checks and key not in extra:
            errors[key] = [UNKNOWN]
    return errors


def _entries(items: object) -> tuple[list[Entry], Any]:
    """The entries of a batch, or the errors the schema's ``entries`` field gives."""
    if items is _ABSENT:
        return [], [REQUIRED]
    if type(items) is not list:
        return [], [NULL] if items is None else [NOT_LIST]
    entries: list[Entry] = []
    errors: Errors = {}
    for i, item in enumerate(items):
        entry = _entry(item)
        if type(entry) is Entry:
            entries.append(entry)
        else:
            errors[i] = entry
    if errors:
        return [], errors
    if len(entries) > MAX_ENTRIES_PER_BATCH:
        return [], [length_message(MAX_ENTRIES_PER_BATCH)]
    return entries, None


def _entry(raw: object) -> Entry | Any:
    """An Entry, or the errors the nested ``EntrySchema`` gives for ``raw``."""
    if type(raw) is not dict:
        return [NULL] if raw is None else {"_schema": [NOT_OBJECT]}
    if raw.keys() == _ENTRY_KEYS and not any(check(raw[name]) for name, check in _ENTRY_CHECKS):
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
            fields=dict(raw["fields"]),
            schema_version=raw["schema_version"],
        )
    return _members(raw, _ENTRY, required=tuple(_ENTRY), extra=())


def _result(raw: object) -> tuple[Result | None, Any]:
    """A Result and None, or None and the errors the nested ``ResultSchema`` gives."""
    if type(raw) is not dict:
        return None, [NULL] if raw is None else {"_schema": [NOT_OBJECT]}
    errors = _members(raw, _RESULT, _RESULT_REQUIRED, extra=("original",))
    original = raw.get("original")
    inner: Result | None = None
    if original is not None:
        inner, why = _result(original)
        if why is not None:
            errors["original"] = why
    if errors:
        return None, errors
    return Result(
        raw["op_id"], raw["status"], raw.get("code"), raw.get("field"), raw.get("message"), inner
    ), None


# -- the report (protocol 2.1) ---------------------------------------------------------
#
# Each loader returns (value, None) or (None, the errors the matching schema gives).


def _list(items: object, load: Callable[[object], tuple[Any, Any]], most: int) -> tuple[Any, Any]:
    """A list field of loaded items: null, not a list, bad items, then too many."""
    if type(items) is not list:
        return None, [NULL] if items is None else [NOT_LIST]
    values, errors = [], {}
    for i, item in enumerate(items):
        value, why = load(item)
        if why is not None:
            errors[i] = why
        else:
            values.append(value)
    if errors:
        return None, errors
    if len(values) > most:
        return None, [length_message(most)]
    return values, None


def _object(
    raw: object, checks: dict[str, Check], optional: tuple[str, ...] = ()
) -> tuple[dict[str, Any] | None, Any]:
    """A flat object of checked members (``optional`` ones read as None when absent)."""
    if type(raw) is not dict:
        return None, [NULL] if raw is None else {"_schema": [NOT_OBJECT]}
    required = tuple(name for name in checks if name not in optional)
    errors = _members(raw, checks, required, extra=())
    if errors:
        return None, errors
    return {name: raw.get(name) for name in checks}, None


def _event(raw: object) -> tuple[Event | None, Any]:
    """A journal event: its ``kind`` picks the members the rest must have."""
    if type(raw) is not dict:
        return None, [NULL] if raw is None else {"_schema": [NOT_OBJECT]}
    kind = raw.get("kind", _ABSENT)
    why = [REQUIRED] if kind is _ABSENT else _EVENT_KIND(kind)
    if why is not None:
        return None, {"kind": why}
    cls, checks, optional = _EVENTS[str(kind)]
    members, errors = _object(raw, {**_EVENT_HEAD, "kind": _no_check, **checks}, optional)
    return (None, errors) if members is None else (cls(**members), None)


def _no_check(value: object) -> list[str] | None:
    return None  # the kind, already checked


def _parked(raw: object) -> tuple[ParkedEntry | None, Any]:
    members, errors = _object(raw, _PARKED)
    return (None, errors) if members is None else (ParkedEntry(**members), None)


def _outcome(raw: object) -> tuple[Outcome | None, Any]:
    members, errors = _object(raw, _OUTCOME, ("code", "message", "new_op_id"))
    return (None, errors) if members is None else (Outcome(**members), None)


def _command(raw: object) -> tuple[Command | None, Any]:
    members, errors = _object(raw, _COMMAND)
    return (None, errors) if members is None else (Command(**members), None)


def _reasons(raw: object) -> tuple[dict[str, int] | None, Any]:
    """Parked counts by reason: keys are ids, values counts (marshmallow's Dict errors)."""
    if type(raw) is not dict:
        return None, [NULL] if raw is None else [NOT_MAPPING]
    errors: Errors = {}
    for key, value in raw.items():
        key_why, value_why = _check_id(key), _check_count(value)
        if key_why is not None:
            errors.setdefault(key, {})["key"] = key_why
        if value_why is not None:
            errors.setdefault(key, {})["value"] = value_why
    if errors:
        return None, errors
    if len(raw) > MAX_REASONS_PER_REPORT:
        return None, [length_message(MAX_REASONS_PER_REPORT)]
    return dict(raw), None


def _databox(raw: object) -> tuple[Databox | None, Any]:
    if type(raw) is not dict:
        return None, [NULL] if raw is None else {"_schema": [NOT_OBJECT]}
    errors = _members(raw, {}, (), extra=("counts", "reasons", "parked"))
    counts, why = _present(raw, "counts", lambda v: _object(v, _COUNTS))
    if why is not None:
        errors["counts"] = why
    reasons, why = _present(raw, "reasons", _reasons)
    if why is not None:
        errors["reasons"] = why
    parked, why = _present(raw, "parked", lambda v: _list(v, _parked, MAX_PARKED_PER_REPORT))
    if why is not None:
        errors["parked"] = why
    if errors:
        return None, errors
    return Databox(DataboxCounts(**counts), reasons, tuple(parked)), None


def _present(
    raw: dict[str, Any], name: str, load: Callable[[object], tuple[Any, Any]]
) -> tuple[Any, Any]:
    """A required member, loaded."""
    return (None, [REQUIRED]) if name not in raw else load(raw[name])


def _report(raw: object) -> tuple[Report | None, Any]:
    if type(raw) is not dict:
        return None, {"_schema": [NOT_OBJECT]}
    errors = _members(
        raw, {"sent_ms": _check_time}, ("sent_ms",), extra=("journal", "databox", "outcomes")
    )
    parts: dict[str, Any] = {}
    for name, load in (
        ("journal", lambda v: _list(v, _event, MAX_JOURNAL_EVENTS_PER_BATCH)),
        ("databox", _databox),
        ("outcomes", lambda v: _list(v, _outcome, MAX_OUTCOMES_PER_REPORT)),
    ):
        parts[name], why = _present(raw, name, load)
        if why is not None:
            errors[name] = why
    if errors:
        return None, errors
    incoherent = report_incoherence(parts["journal"])
    if incoherent is not None:
        return None, incoherent
    journal, outcomes = tuple(parts["journal"]), tuple(parts["outcomes"])
    return Report(raw["sent_ms"], journal, parts["databox"], outcomes), None


def report_incoherence(journal: list[Event]) -> Errors | None:
    """Why a report's journal does not hang together (an event id twice), or None."""
    if len({event.id for event in journal}) != len(journal):
        return {"journal": ["event id repeated within the report"]}
    return None


#: "MAJOR.MINOR" in ASCII digits (as codec.check_protocol_version reads it).
_MINOR = re.compile(rf"[0-9]{{1,{MAX_VERSION_DIGITS}}}\.([0-9]{{1,{MAX_VERSION_DIGITS}}})")


def batch_incoherence(
    version: str, device_id: object, entries: list[Entry], report: Report | None
) -> Errors | None:
    """Why a batch does not hang together: no entries and no report, a report under a
    version before 2.1, or entries that do not (see ``incoherence``); None if it does."""
    if report is None and not entries:
        return {"entries": ["a batch without a report carries at least one entry"]}
    minor = _MINOR.fullmatch(version)
    if report is not None and minor is not None and int(minor.group(1)) < REPORT_MINOR:
        return {"report": [f"a report needs protocol version 2.{REPORT_MINOR} or later"]}
    return incoherence(device_id, entries)


def incoherence(device_id: object, entries: list[Entry]) -> Errors | None:
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


def _incomplete(entries: list[Entry]) -> Errors | None:
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

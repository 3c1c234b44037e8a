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

from collections.abc import Callable
from typing import Any

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
from .errors import ProtocolError
from .model import KINDS, STATUSES, Ack, Batch, Entry, Result

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


def name_message(most: int) -> str:
    """What an id or a name that is not 1..``most`` clean characters is told."""
    return f"1-{most} characters, no control characters"


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
        return [f"Longer than maximum length {MAX_FIELDS_PER_ENTRY}."]
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


def load_batch(raw: object) -> Batch:
    """The Batch ``BatchSchema`` loads from ``raw``; else ProtocolError with its errors."""
    if type(raw) is not dict:
        raise _refused("batch", {"_schema": [NOT_OBJECT]})
    errors = _members(raw, _BATCH, required=tuple(_BATCH), extra=("entries",))
    entries, entry_errors = _entries(raw.get("entries", _ABSENT))
    if entry_errors is not None:
        errors["entries"] = entry_errors
    if errors:
        raise _refused("batch", errors)
    incoherent = incoherence(raw["device_id"], entries)
    if incoherent is not None:
        raise _refused("batch", incoherent)
    return Batch(raw["protocol_version"], raw["batch_id"], raw["device_id"], tuple(entries))


def load_ack(raw: object) -> Ack:
    """The Ack ``AckSchema`` loads from ``raw``; else ProtocolError with its errors."""
    if type(raw) is not dict:
        raise _refused("ack", {"_schema": [NOT_OBJECT]})
    errors = _members(raw, {"batch_id": _check_id}, ("batch_id",), ("results", "server_time_ms"))
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
    if errors:
        raise _refused("ack", errors)
    return Ack(raw["batch_id"], tuple(results), server_time)


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
    if not 1 <= len(entries) <= MAX_ENTRIES_PER_BATCH:
        return [], [f"Length must be between 1 and {MAX_ENTRIES_PER_BATCH}."]
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

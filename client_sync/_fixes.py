"""Resubmitting a parked entry with fixed fields: validated like a record, then recorded.

One home for what ``SyncClient.resubmit`` and ``OutboxFile.resubmit`` (the
``fieldsync outbox resubmit`` command) both do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from protocol.errors import EntryInvalid
from protocol.model import KINDS
from protocol.registry import Registry, check_record_id

from ._databox import DataBox
from ._reads import Reads
from ._states import State, check

#: Longest reason kept for a resubmit or discard (the audit and the journal keep it).
MAX_REASON_LENGTH = 500


def validate(
    registry: Registry, collection: str, record_id: str, fields: Mapping[str, Any], kind: str
) -> tuple[dict[str, Any], int]:
    """The normalised fields and schema version of a change, or EntryInvalid."""
    if kind not in KINDS:
        raise EntryInvalid("unknown_kind", None, f"kind {kind!r} is not one of {KINDS}")
    check_record_id(record_id)
    if type(fields) is not dict and not isinstance(fields, Mapping):
        raise EntryInvalid("wrong_type", None, "fields must be a mapping")
    found = registry.get(collection)  # one lookup: record()'s hot path (h8-record)
    return found.validate(kind, fields), found.schema_version


def resubmit(
    box: DataBox,
    registry: Registry,
    op_id: str,
    fields: Mapping[str, Any] | None,
    reason: str,
) -> str:
    """Record parked ``op_id`` again with ``fields`` (None: as it was); the new op_id."""
    why = check_reason(reason)
    current = Reads(box.outbox.store).entry(op_id)
    check(current.state, State.RESUBMITTED, op_id=op_id)
    values = current.fields if fields is None else fields
    normalized, version = validate(
        registry, current.collection, current.record_id, values, current.kind
    )
    return box.resubmit(op_id, normalized, version, reason=why)


def check_reason(reason: object) -> str:
    """An audited reason: non-blank text, no control characters, at most 500 characters."""
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError("a data-box action needs a reason (it is audited)")
    if len(reason) > MAX_REASON_LENGTH:
        raise ValueError(f"a reason is at most {MAX_REASON_LENGTH} characters")
    if any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF or ord(c) == 127 for c in reason):
        raise ValueError("a reason must be plain text (no control characters or lone surrogates)")
    return reason

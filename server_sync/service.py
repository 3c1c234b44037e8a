"""Idempotent batch apply: the op log answers replays, per-field LWW builds record state.

Theory of operation. ``ops`` holds one row per (device_id, op_id) ever answered, with
the verdict given; a replay is answered from it (``duplicate`` + the original
verdict), so retries, restarts and several server processes all get one answer.
A transaction's ops are inserted under a SAVEPOINT: if another process stored them
first, the unique constraint fails, the savepoint rolls back and the group is
answered from what that process stored. ``record_fields`` holds each field's current
value and the HLC that wrote it; a write wins only with a greater (hlc, value) pair,
so the state does not depend on the order entries arrive in. Stamps are compared as
parsed numbers (wall_ms, counter, node), in Python and in SQL alike, never as text;
a stamp more than MAX_CLOCK_AHEAD_MS ahead of the server's clock is rejected
(``clock_ahead``) with its whole transaction, so no device clock can win for ever.
Field writes of the whole batch are done last, in key order, so concurrent writers
lock rows alike.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from conflict import hlc
from protocol import (
    Ack,
    Batch,
    Entry,
    EntryInvalid,
    ProtocolError,
    Registry,
    Result,
    UnsupportedVersion,
    canonical_json,
)
from protocol.codec import decode_result, encode_result, entry_digest
from protocol.constants import MAX_CLOCK_AHEAD_MS

from .db import upsert_into
from .errors import WrongDevice
from .models import ops, record_fields

#: The field a delete sets to true and an upsert or patch sets to false.
DELETED = "__deleted__"


_FieldKey = tuple[str, str, str]  # collection, record_id, field
#: (wall_ms, counter, node, value_json, hlc text): compared as a tuple, greater wins
#: (the text is a function of the first three, so it never decides).
_FieldValue = tuple[int, int, str, str, str]


@dataclass(frozen=True, slots=True)
class _Stored:
    digest: str
    result: Result


@dataclass(slots=True)
class _Run:
    """One apply_batch call: what it reads, and the field writes it gathers."""

    conn: sa.Connection
    batch: Batch
    registry: Registry
    received_at: datetime
    stored: dict[str, _Stored]
    stamps: dict[str, hlc.Hlc]
    writes: dict[_FieldKey, _FieldValue] = dataclasses.field(default_factory=dict)

    @property
    def now_ms(self) -> int:
        """The server's clock for this batch, in ms since the epoch."""
        return int(self.received_at.timestamp() * 1000)


def apply_batch(
    conn: sa.Connection,
    device_id: str,
    batch: Batch,
    registry: Registry,
    *,
    now: datetime | None = None,
) -> Ack:
    """Apply ``batch`` from ``device_id`` in the caller's transaction; results in batch order.

    Raises WrongDevice (batch sent as another device), ProtocolError (an entry the
    wire schema could not catch) or UnsupportedVersion (a schema version not spoken
    here); then nothing is written and the caller must roll back.
    """
    if batch.device_id != device_id:
        raise WrongDevice(
            "a device can only submit as itself",
            {"device_id": batch.device_id, "authenticated_as": device_id},
        )
    stamps = _check_entries(batch.entries)
    stored = _load_stored(conn, device_id, [e.op_id for e in batch.entries])
    _check_versions(batch.entries, registry, stored)
    run = _Run(conn, batch, registry, now or datetime.now(UTC), stored, stamps)
    groups = list(_groups(batch.entries))
    answers = _apply_all(run, groups)
    if answers is None:  # another process stored some of these ops: group by group
        answers = {}
        for group in groups:
            answers.update(_apply_group(run, group))
    _write_fields(conn, run.writes)
    results = tuple(answers[e.op_id] for e in batch.entries)
    return Ack(batch.batch_id, results, server_time_ms=run.now_ms)


def get_record(conn: sa.Connection, collection: str, record_id: str) -> dict[str, Any] | None:
    """A record's current field values, or None if it is absent or deleted."""
    rows = conn.execute(
        sa.select(record_fields.c.field, record_fields.c.value_json).where(
            record_fields.c.collection == collection, record_fields.c.record_id == record_id
        )
    )
    values = {field: json.loads(value) for field, value in rows}
    if not values or values.pop(DELETED, False):
        return None
    return values


def _apply_all(run: _Run, groups: Sequence[Sequence[Entry]]) -> dict[str, Result] | None:
    """The common case in one statement: every group's new ops under one SAVEPOINT.

    Verdicts are the ones ``_apply_group`` would give (each transaction judged on its
    own). If the insert hits the unique constraint (a racing process, or an op_id
    twice in the batch), nothing is kept and None sends the caller group by group.
    """
    stored = run.stored
    answers: dict[str, Result] = {}
    rows: list[dict[str, Any]] = []
    judged: list[tuple[list[Entry], dict[str, dict[str, Any]]]] = []
    for group in groups:
        replays = {e.op_id: _replay(e, stored[e.op_id]) for e in group if e.op_id in stored}
        answers.update(replays)
        new = [e for e in group if e.op_id not in stored]
        if not new:
            continue
        blocker = next((e.op_id for e in group if _rejected(replays.get(e.op_id))), None)
        verdicts, values = _judge(run, new, blocker)
        rows.extend(_op_row(run, e, verdicts[e.op_id]) for e in new)
        answers.update(verdicts)
        judged.append((new, values))
    if rows:
        try:
            with run.conn.begin_nested():
                run.conn.execute(ops.insert(), rows)
        except sa.exc.IntegrityError:
            return None
    for new, values in judged:
        for entry in new:
            if entry.op_id in values:
                _collect_writes(entry, run.stamps[entry.op_id], values[entry.op_id], run.writes)
    return answers


def _apply_group(run: _Run, group: Sequence[Entry]) -> dict[str, Result]:
    """Answer one transaction's entries: replays from the log, new ones all-or-nothing."""
    stored = run.stored
    answers = {e.op_id: _replay(e, stored[e.op_id]) for e in group if e.op_id in stored}
    new = [e for e in group if e.op_id not in stored]
    if not new:
        return answers
    # A transaction with a rejected entry applies nothing more, even if the device
    # split it across batches.
    blocker = next((e.op_id for e in group if _rejected(answers.get(e.op_id))), None)
    verdicts, values = _judge(run, new, blocker)
    rows = [_op_row(run, e, verdicts[e.op_id]) for e in new]
    try:
        with run.conn.begin_nested():
            run.conn.execute(ops.insert(), rows)
    except sa.exc.IntegrityError:
        # Another process stored some of these ops after we looked: answer from its rows.
        raced = _load_stored(run.conn, run.batch.device_id, [e.op_id for e in new])
        if not raced:
            raise
        stored.update(raced)
        return _apply_group(run, group)
    answers.update(verdicts)
    for entry in new:
        if entry.op_id in values:
            _collect_writes(entry, run.stamps[entry.op_id], values[entry.op_id], run.writes)
    return answers


def _judge(
    run: _Run, entries: Sequence[Entry], blocker: str | None
) -> tuple[dict[str, Result], dict[str, dict[str, Any]]]:
    """Verdicts for a transaction's new entries, and normalised fields if all pass."""
    verdicts: dict[str, Result] = {}
    values: dict[str, dict[str, Any]] = {}
    for entry in entries:
        try:
            _check_clock(run.stamps[entry.op_id], run.now_ms)
            values[entry.op_id] = run.registry.validate(entry.collection, entry.kind, entry.fields)
        except EntryInvalid as exc:
            verdicts[entry.op_id] = Result(
                entry.op_id, "rejected", exc.code, exc.field, exc.message
            )
    blocker = blocker or next(iter(verdicts), None)
    if blocker is not None:
        for entry in entries:
            verdicts.setdefault(
                entry.op_id,
                Result(
                    entry.op_id,
                    "rejected",
                    "tx_rejected",
                    None,
                    f"not applied: entry {blocker} of the same transaction "
                    f"{entry.tx_id} was rejected",
                ),
            )
        return verdicts, {}
    return {e.op_id: Result(e.op_id, "applied") for e in entries}, values


def _check_clock(stamp: hlc.Hlc, now_ms: int) -> None:
    """Raise EntryInvalid(clock_ahead) if ``stamp`` runs too far ahead of the server."""
    if stamp.wall_ms > now_ms + MAX_CLOCK_AHEAD_MS:
        ahead = stamp.wall_ms - now_ms
        raise EntryInvalid(
            "clock_ahead",
            "hlc",
            f"stamped {ahead} ms ahead of the server's clock (at most {MAX_CLOCK_AHEAD_MS}); "
            f"server time is {now_ms} ms: correct the clock and send it again",
        )


def _replay(entry: Entry, prior: _Stored) -> Result:
    if prior.digest == entry_digest(entry):
        return Result(entry.op_id, "duplicate", original=prior.result)
    return Result(
        entry.op_id,
        "rejected",
        "op_id_reused",
        "op_id",
        "this op_id was already used for a different entry; a changed entry needs a new op_id",
    )


def _rejected(result: Result | None) -> bool:
    return result is not None and result.outcome.status == "rejected"


def _collect_writes(
    entry: Entry, stamp: hlc.Hlc, values: dict[str, Any], writes: dict[_FieldKey, _FieldValue]
) -> None:
    """Add an applied entry's field writes, keeping the greatest (hlc, value) per field."""
    values = {DELETED: True} if entry.kind == "delete" else {**values, DELETED: False}
    for field, value in values.items():
        key = (entry.collection, entry.record_id, field)
        value_json = canonical_json(value).decode()
        candidate = (stamp.wall_ms, stamp.counter, stamp.node, value_json, str(stamp))
        if key not in writes or writes[key] < candidate:
            writes[key] = candidate


def _write_fields(conn: sa.Connection, writes: dict[_FieldKey, _FieldValue]) -> None:
    """Upsert field values; an existing value survives unless ours has a greater (hlc, value)."""
    if not writes:
        return
    insert = upsert_into(conn, record_fields)
    current, incoming = record_fields.c, insert.excluded
    order = ("hlc_wall_ms", "hlc_counter", "hlc_node", "value_json")
    stmt = insert.on_conflict_do_update(
        index_elements=[current.collection, current.record_id, current.field],
        set_={name: incoming[name] for name in (*order, "hlc")},
        # Numbers compared as numbers; node and value by the columns' byte order.
        where=sa.tuple_(*(current[n] for n in order)) < sa.tuple_(*(incoming[n] for n in order)),
    )
    rows = [
        {
            "collection": c,
            "record_id": r,
            "field": f,
            "hlc_wall_ms": wall,
            "hlc_counter": counter,
            "hlc_node": node,
            "value_json": v,
            "hlc": text,
        }
        for (c, r, f), (wall, counter, node, v, text) in sorted(writes.items())
    ]
    conn.execute(stmt, rows)


def _check_entries(entries: Iterable[Entry]) -> dict[str, hlc.Hlc]:
    """Each entry's parsed HLC stamp; refuse the batch if one does not parse (strictly)."""
    errors: dict[int, dict[str, list[str]]] = {}
    stamps: dict[str, hlc.Hlc] = {}
    for i, entry in enumerate(entries):
        try:
            stamps[entry.op_id] = hlc.parse(entry.hlc)
        except ValueError:
            errors.setdefault(i, {})["hlc"] = ["not a hybrid logical clock stamp"]
    if errors:
        raise ProtocolError("malformed batch", {"entries": errors})
    return stamps


def _check_versions(
    entries: Sequence[Entry], registry: Registry, stored: dict[str, _Stored]
) -> None:
    """Raise UnsupportedVersion if a new entry's schema version is not spoken here."""
    for i, entry in enumerate(entries):
        if entry.op_id in stored or entry.collection not in registry:
            continue  # an unknown collection is rejected per entry, not per batch
        try:
            registry.check_version(entry.collection, entry.schema_version)
        except UnsupportedVersion as exc:
            raise UnsupportedVersion(
                str(exc), {"entries": {i: {"schema_version": [str(exc)]}}}
            ) from exc


def _load_stored(conn: sa.Connection, device_id: str, op_ids: list[str]) -> dict[str, _Stored]:
    rows = conn.execute(
        sa.select(ops.c.op_id, ops.c.digest, ops.c.result_json).where(
            ops.c.device_id == device_id, ops.c.op_id.in_(op_ids)
        )
    )
    return {row.op_id: _Stored(row.digest, decode_result(row.result_json)) for row in rows}


def _op_row(run: _Run, entry: Entry, verdict: Result) -> dict[str, Any]:
    return {
        "device_id": entry.device_id,
        "op_id": entry.op_id,
        "seq": entry.seq,
        "tx_id": entry.tx_id,
        "batch_id": run.batch.batch_id,
        "collection": entry.collection,
        "record_id": entry.record_id,
        "kind": entry.kind,
        "hlc": entry.hlc,
        "schema_version": entry.schema_version,
        "fields_json": canonical_json(entry.fields).decode(),
        "digest": entry_digest(entry),
        "status": verdict.status,
        "result_json": encode_result(verdict).decode(),
        "received_at": run.received_at,
    }


def _groups(entries: Sequence[Entry]) -> Iterator[list[Entry]]:
    for _, group in itertools.groupby(entries, key=lambda e: e.tx_id):
        yield list(group)

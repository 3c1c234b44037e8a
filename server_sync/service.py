"""Idempotent batch apply: the op log answers replays; records.py keeps record state.

Theory of operation. ``ops`` holds one row per (device_id, op_id) ever answered, with
the verdict given; a replay is answered from it (``duplicate`` + the original
verdict), so retries, restarts and several server processes all get one answer.
One algorithm applies a batch: plan every transaction's verdicts from what the log
holds (a transaction with a rejected entry applies nothing), then insert the batch's
new ops in one executemany under a SAVEPOINT. If another process stored some of them
first, the unique constraint fails, the savepoint rolls back, those rows are read and
the plan is made again with them as replays: the race is answered as a duplicate of
the winner. Then the applied entries' fields are merged into ``records`` in one
set-based write (records.py, by conflict.merge), so the state does not depend on the
order entries arrive in. A stamp more than MAX_CLOCK_AHEAD_MS ahead of the server's
clock is rejected (``clock_ahead``) with its whole transaction, so no device clock can
win for ever. Each entry is serialised once: its digest, its fields' JSON, its verdict.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
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
)
from protocol.codec import decode_result, encode_result, entry_digest_and_fields
from protocol.constants import MAX_CLOCK_AHEAD_MS

from . import oplog, records
from .errors import WrongDevice
from .records import get_record

__all__ = ["apply_batch", "get_record"]


@dataclass(frozen=True, slots=True)
class _Stored:
    digest: str
    result: Result


@dataclass(slots=True)
class _Run:
    """One apply_batch call: what it knows of the log, and each entry's stamp and digest."""

    batch: Batch
    registry: Registry
    received_at: datetime
    stored: dict[str, _Stored]
    stamps: dict[str, hlc.Hlc]
    #: Each entry's digest and its fields' canonical JSON, by op_id.
    encoded: dict[str, tuple[str, bytes]]

    @property
    def now_ms(self) -> int:
        """The server's clock for this batch, in ms since the epoch."""
        return int(self.received_at.timestamp() * 1000)


@dataclass(slots=True)
class _Plan:
    """Verdicts for every entry, the op rows to insert, and the record changes they make."""

    answers: dict[str, Result] = field(default_factory=dict)
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    changes: records.Changes = field(default_factory=records.Changes)


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
    stored = _load_stored(conn, device_id, list(stamps))
    _check_versions(batch.entries, registry, stored)
    encoded = {e.op_id: entry_digest_and_fields(e) for e in batch.entries}
    run = _Run(batch, registry, now or datetime.now(UTC), stored, stamps, encoded)
    groups = list(_groups(batch.entries))
    # Each retry moves at least one op (raced in by another process) into ``stored``.
    for _ in range(len(batch.entries) + 1):
        plan = _plan(run, groups)
        try:
            _insert_ops(conn, run, plan.rows)
            break
        except sa.exc.IntegrityError:
            raced = _load_stored(conn, device_id, [row[oplog.OP_ID] for row in plan.rows])
            if not raced:
                raise
            stored.update(raced)
    else:  # pragma: no cover - unreachable by the bound above
        raise RuntimeError("apply_batch did not settle")
    records.write(conn, plan.changes)
    results = tuple(plan.answers[e.op_id] for e in batch.entries)
    return Ack(batch.batch_id, results, server_time_ms=run.now_ms)


def _plan(run: _Run, groups: Iterable[Sequence[Entry]]) -> _Plan:
    """Judge each transaction on its own: replays from the log, new entries all-or-nothing."""
    plan = _Plan()
    stored = run.stored
    for group in groups:
        new = [e for e in group if e.op_id not in stored]
        blocker = None
        if len(new) < len(group):
            replays = {
                e.op_id: _replay(run, e, stored[e.op_id]) for e in group if e.op_id in stored
            }
            plan.answers.update(replays)
            # A transaction with a rejected entry applies nothing more, even if the
            # device split it across batches.
            blocker = next((e.op_id for e in group if _rejected(replays.get(e.op_id))), None)
        if not new:
            continue
        verdicts, values = _judge(run, new, blocker)
        plan.answers.update(verdicts)
        for entry in new:
            plan.rows.append(_op_row(run, entry, verdicts[entry.op_id]))
            if entry.op_id in values:
                key = (entry.collection, entry.record_id)
                plan.changes.add(key, entry.kind, run.stamps[entry.op_id], values[entry.op_id])
    return plan


def _insert_ops(conn: sa.Connection, run: _Run, rows: list[tuple[Any, ...]]) -> None:
    """Insert the new ops in one statement; IntegrityError (a race) leaves nothing."""
    if rows:
        with conn.begin_nested():
            oplog.insert(conn, rows, run.received_at)


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


def _replay(run: _Run, entry: Entry, prior: _Stored) -> Result:
    if prior.digest == run.encoded[entry.op_id][0]:
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


def _check_entries(entries: Iterable[Entry]) -> dict[str, hlc.Hlc]:
    """Each entry's parsed HLC stamp; refuse the batch if one does not parse (strictly)
    or an op_id repeats (the wire decoder refuses both; this guards direct callers)."""
    errors: dict[int, dict[str, list[str]]] = {}
    stamps: dict[str, hlc.Hlc] = {}
    for i, entry in enumerate(entries):
        if entry.op_id in stamps:
            errors.setdefault(i, {})["op_id"] = ["op_id repeated within the batch"]
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
    rows = oplog.load(conn, device_id, op_ids)
    return {op_id: _Stored(digest, decode_result(result)) for op_id, digest, result in rows}


def _op_row(run: _Run, entry: Entry, verdict: Result) -> tuple[Any, ...]:
    digest, fields_json = run.encoded[entry.op_id]
    return (
        entry.device_id,
        entry.op_id,
        entry.seq,
        entry.tx_id,
        run.batch.batch_id,
        entry.collection,
        entry.record_id,
        entry.kind,
        entry.hlc,
        entry.schema_version,
        fields_json.decode(),
        digest,
        verdict.status,
        encode_result(verdict).decode(),
    )


def _groups(entries: Sequence[Entry]) -> Iterator[list[Entry]]:
    for _, group in itertools.groupby(entries, key=lambda e: e.tx_id):
        yield list(group)

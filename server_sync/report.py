"""Report ingestion: a batch's journal events stored once each, the data box, command
outcomes, and the device's rollup.

``store_report`` is the one place a report is stored. It runs in the batch's own
transaction, after ``apply_batch``: an ack means the whole report is stored, a refused
batch stores none of it. The data box goes to databox.py's tables and the command
outcomes to commands.py's (each their only home). Journal events
are keyed by (device, event id), so a replayed report adds nothing. Device times are
corrected to the server's clock by one offset per report (``clock_offset``, described
in docs/server.md, "Clock skew"). Then the device's ``device_status`` row, which the
fleet view sorts on, is brought up to date: last seen, latest status, data-box sort
keys, and the default window's figures (audit.py), computed from this device's own
events only. The device's events older than the retention are deleted on the way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from protocol import Batch, Report, canonical_json
from protocol.model import AttemptEvent, Event, LinkEvent, StatusEvent

from . import audit
from .commands import store_outcomes
from .databox import store_databox
from .db import upsert_into
from .models import device_status, journal_events

__all__ = ["clock_offset", "store_report"]


def store_report(conn: sa.Connection, device_id: str, batch: Batch, received_ms: int) -> None:
    """Store ``batch.report`` (if any) of ``device_id``, received at ``received_ms``."""
    report = batch.report
    if report is None:
        return
    offset = clock_offset(report, received_ms)
    _insert_events(conn, device_id, batch.batch_id, report.journal, offset=offset, at=received_ms)
    now = datetime.fromtimestamp(received_ms / 1000, UTC)
    store_databox(conn, device_id, report.databox, now, sent_ms=report.sent_ms)
    if report.outcomes:
        store_outcomes(conn, device_id, report.outcomes, now)
    _update_status(conn, device_id, report, offset, received_ms)
    _prune(conn, device_id, received_ms - audit.RETENTION_MS)
    audit.refresh_figures(conn, device_id, received_ms)


def clock_offset(report: Report, received_ms: int) -> int:
    """Server time minus device time (ms), as well as this report can tell.

    Two estimates bracket the true offset: the latest attempt's ``server_time_ms -
    ended_ms`` is at most it (the device read the answer after the server wrote it),
    ``received_ms - sent_ms`` at least it (the server read the batch after the device
    wrote it). The first errs by one download, the second by one upload and any wait
    before sending, so the first is used when the two agree; else (the device's clock
    was changed in between) the second.
    """
    receipt = received_ms - report.sent_ms
    exchanges = [
        (event.at_ms, event.server_time_ms - event.ended_ms)
        for event in report.journal
        if isinstance(event, AttemptEvent) and event.server_time_ms is not None
    ]
    if exchanges:
        latest = max(exchanges)[1]
        if latest <= receipt:
            return latest
    return receipt


def corrected(at_ms: int, offset: int, received_ms: int) -> int:
    """A device time on the server's clock, never after the report arrived."""
    return min(max(at_ms + offset, 0), received_ms)


def _insert_events(
    conn: sa.Connection,
    device_id: str,
    batch_id: str,
    journal: Sequence[Event],
    *,
    offset: int,
    at: int,
) -> None:
    """Insert the events not stored yet; a replayed event keeps its first row."""
    if not journal:
        return
    known = set(
        conn.execute(
            sa.select(journal_events.c.event_id).where(
                journal_events.c.device_id == device_id,
                journal_events.c.event_id.in_([e.id for e in journal]),
            )
        ).scalars()
    )
    rows = [
        _row(device_id, batch_id, event, offset, at) for event in journal if event.id not in known
    ]
    if rows:
        insert = upsert_into(conn, journal_events).on_conflict_do_nothing(
            index_elements=["device_id", "event_id"]
        )
        conn.execute(insert, rows)


def _prune(conn: sa.Connection, device_id: str, before_ms: int) -> None:
    """Delete the device's events older than the retention (by its own index)."""
    conn.execute(
        journal_events.delete().where(
            journal_events.c.device_id == device_id, journal_events.c.at_server_ms < before_ms
        )
    )


def _row(
    device_id: str, batch_id: str, event: Event, offset: int, received_ms: int
) -> dict[str, Any]:
    link = event if isinstance(event, LinkEvent) else None
    return {
        "device_id": device_id,
        "event_id": event.id,
        "kind": event.kind,
        "at_ms": event.at_ms,
        "at_server_ms": corrected(event.at_ms, offset, received_ms),
        "received_ms": received_ms,
        "batch_id": batch_id,
        "channel": link.channel if link else None,
        "up": link.up if link else None,
        "body_json": canonical_json(event).decode(),
    }


def _update_status(
    conn: sa.Connection, device_id: str, report: Report, offset: int, received_ms: int
) -> None:
    """Bring the device's status row up to date with this report (created if missing)."""
    conn.execute(
        upsert_into(conn, device_status)
        .values(device_id=device_id)
        .on_conflict_do_nothing(index_elements=["device_id"])
    )
    row = conn.execute(
        sa.select(
            device_status.c.last_seen_ms,
            device_status.c.report_sent_ms,
            device_status.c.status_at_ms,
        ).where(device_status.c.device_id == device_id)
    ).one()
    values: dict[str, Any] = {"reports": device_status.c.reports + 1}
    if received_ms >= row.last_seen_ms:
        values.update(last_seen_ms=received_ms, last_sync_ms=received_ms, offset_ms=offset)
    values.update(_latest_status(report, offset, received_ms, row.status_at_ms))
    if report.sent_ms >= row.report_sent_ms:
        values.update(_databox_keys(report, received_ms))
    conn.execute(
        device_status.update().where(device_status.c.device_id == device_id).values(values)
    )


def _latest_status(report: Report, offset: int, received_ms: int, stored_at: int) -> dict[str, Any]:
    """The newest status event of the report, if newer than the stored one."""
    statuses = [e for e in report.journal if isinstance(e, StatusEvent)]
    if not statuses:
        return {}
    latest = max(statuses, key=lambda e: e.at_ms)
    at = corrected(latest.at_ms, offset, received_ms)
    if at < stored_at:
        return {}
    return {
        "status_at_ms": at,
        "app_version": latest.app_version,
        "protocol_version": latest.protocol_version,
        "queue_depth": latest.queue_depth,
        "free_bytes": latest.free_bytes,
    }


def _databox_keys(report: Report, received_ms: int) -> dict[str, Any]:
    """The fleet view's data-box sort keys: parked count and when the oldest was parked."""
    ages = [entry.age_s for entry in report.databox.parked]
    oldest = max(received_ms - max(ages) * 1000, 1) if ages else 0
    return {
        "report_sent_ms": report.sent_ms,
        "parked": report.databox.counts.parked,
        "oldest_parked_ms": oldest,
    }

"""A device's stored journal, a page at a time, in server-time order."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from .models import journal_events


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One journal event as stored: the device's body and the server's times."""

    event_id: str
    kind: str
    at_ms: int
    at_server_ms: int
    received_ms: int
    batch_id: str
    event: dict[str, Any]
    cursor: str


def list_events(
    conn: sa.Connection,
    device_id: str,
    *,
    limit: int,
    after: tuple[int, int] | None = None,
    kind: str | None = None,
) -> list[StoredEvent]:
    """Up to ``limit`` events of ``device_id`` after ``after`` (server time, row id)."""
    j = journal_events.c
    query = (
        sa.select(
            j.id,
            j.event_id,
            j.kind,
            j.at_ms,
            j.at_server_ms,
            j.received_ms,
            j.batch_id,
            j.body_json,
        )
        .where(j.device_id == device_id)
        .order_by(j.at_server_ms, j.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(sa.tuple_(j.at_server_ms, j.id) > after)
    if kind is not None:
        query = query.where(j.kind == kind)
    return [
        StoredEvent(
            row.event_id,
            row.kind,
            row.at_ms,
            row.at_server_ms,
            row.received_ms,
            row.batch_id,
            json.loads(row.body_json),
            f"{row.at_server_ms}.{row.id}",
        )
        for row in conn.execute(query)
    ]

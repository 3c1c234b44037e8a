"""The fleet view: every device's status row, sorted and filtered, a page at a time.

It reads ``device_status`` (one row per device, kept by report.py and audit.py) by
the index of the chosen sort key and stops after a page: its cost does not grow with
the number of devices or journal events. Pages are chained by a keyset cursor (the
last row's sort value and device id), so a later page is as cheap as the first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from protocol._text import is_name
from protocol.constants import MAX_ID_LENGTH

from .errors import InvalidRequest
from .models import device_status, devices

Sort = Literal["offline", "failure_rate", "not_seen", "queue_depth", "oldest_parked"]

#: Each sort: its column, and whether the largest value comes first.
SORTS: dict[str, tuple[sa.Column[Any], bool]] = {
    "offline": (device_status.c.offline_ms, True),
    "failure_rate": (device_status.c.failure_ppm, True),
    "not_seen": (device_status.c.last_seen_ms, False),
    "queue_depth": (device_status.c.queue_depth, True),
    "oldest_parked": (device_status.c.oldest_parked_ms, False),
}

#: A cursor: the last row's sort value (ASCII digits), a dot, its device id.
_CURSOR = re.compile(r"([0-9]{1,19})\.(.+)", re.ASCII | re.DOTALL)

#: Longest cursor: 19 digits, a dot, a device id.
MAX_CURSOR = 20 + MAX_ID_LENGTH


@dataclass(frozen=True, slots=True)
class FleetRow:
    """One device as the fleet view lists it."""

    device_id: str
    name: str
    revoked: bool
    last_seen_ms: int | None
    last_sync_ms: int | None
    figures_at_ms: int | None
    offline_ms: int
    online_ms: int
    attempts: int
    failed: int
    failure_rate: float | None
    queue_depth: int | None
    free_bytes: int | None
    parked: int
    oldest_parked_ms: int | None
    app_version: str | None
    protocol_version: str | None
    clock_offset_ms: int | None
    cursor: str


def parse_cursor(text: str) -> tuple[int, str]:
    """(sort value, device id) from a cursor this module wrote; InvalidQuery otherwise."""
    match = _CURSOR.fullmatch(text) if len(text) <= MAX_CURSOR else None
    if match is None or not is_name(match.group(2), MAX_ID_LENGTH):
        raise InvalidRequest("cursor is not one this server wrote", {"cursor": ["invalid"]})
    value = int(match.group(1))
    if value >= 2**63:
        raise InvalidRequest("cursor is not one this server wrote", {"cursor": ["invalid"]})
    return value, match.group(2)


def fleet(
    conn: sa.Connection,
    *,
    sort: str,
    limit: int,
    cursor: tuple[int, str] | None = None,
    seen_before_ms: int | None = None,
) -> list[FleetRow]:
    """One page of devices in ``sort`` order, after ``cursor``; ``seen_before_ms`` keeps
    only devices not seen since then (never-seen ones included)."""
    column, descending = SORTS[sort]
    s = device_status.c
    key = sa.tuple_(column, s.device_id)
    query = (
        sa.select(device_status, devices.c.name, devices.c.revoked_at)
        .join(devices, devices.c.id == s.device_id)
        .order_by(
            *(c.desc() for c in (column, s.device_id)) if descending else (column, s.device_id)
        )
        .limit(limit)
    )
    if cursor is not None:
        query = query.where(key < cursor if descending else key > cursor)
    if seen_before_ms is not None:
        query = query.where(s.last_seen_ms < seen_before_ms)
    if sort == "oldest_parked":
        query = query.where(s.oldest_parked_ms > 0)  # only devices with a stuck entry
    return [_row(row, column.name) for row in conn.execute(query)]


def _row(row: Any, sort_column: str) -> FleetRow:
    seen = row.last_seen_ms
    return FleetRow(
        device_id=row.device_id,
        name=row.name,
        revoked=row.revoked_at is not None,
        last_seen_ms=seen or None,
        last_sync_ms=row.last_sync_ms or None,
        figures_at_ms=row.figures_at_ms or None,
        offline_ms=row.offline_ms,
        online_ms=row.online_ms,
        attempts=row.attempts,
        failed=row.failed,
        failure_rate=row.failed / row.attempts if row.attempts else None,
        queue_depth=row.queue_depth if row.status_at_ms else None,
        free_bytes=row.free_bytes,
        parked=row.parked,
        oldest_parked_ms=row.oldest_parked_ms or None,
        app_version=row.app_version,
        protocol_version=row.protocol_version,
        clock_offset_ms=row.offset_ms if seen else None,
        cursor=f"{getattr(row, sort_column)}.{row.device_id}",
    )

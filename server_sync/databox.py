"""The fleet data box: each device's latest data-box summary, and stuck entries across devices.

A device sends its data box with each report (``report.databox``: counts by state,
parked entries by reason, and up to 100 parked entries). ``store_databox`` keeps the
latest one per device, replacing the one before, in the batch's own transaction; a
report older than the stored one (by the device's ``sent_ms``) changes nothing.
``fleet_databox`` answers ``GET /v1/admin/databox``: parked entries across the fleet,
oldest stuck first, and totals by reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from protocol.model import Databox, ParkedEntry

from .models import device_databox, device_databox_reasons, device_databox_state

#: Highest count kept from a report (a trillion): sums over a fleet stay far inside a
#: BIGINT, where a hostile 2**63 - 1 from two devices would overflow SQLite's sum().
MAX_KEPT_COUNT = 2**40

#: Longest age the server reckons with (20 years): older is treated as this old.
MAX_AGE_S = 20 * 365 * 86_400


@dataclass(frozen=True, slots=True)
class StuckEntry:
    """A parked entry as the fleet data box lists it."""

    device_id: str
    op_id: str
    collection: str
    record_id: str
    code: str
    message: str
    age_s: int
    reported_at: datetime
    parked_at: datetime


@dataclass(frozen=True, slots=True)
class ReasonTotal:
    """Parked entries of one reason across the fleet, and on how many devices."""

    reason: str
    parked: int
    devices: int


def store_databox(
    conn: sa.Connection,
    device_id: str,
    databox: Databox,
    now: datetime,
    *,
    sent_ms: int = 0,
) -> bool:
    """Keep ``databox`` as the device's latest summary; False if a newer one is stored."""
    state = device_databox_state.c
    stored = conn.execute(
        sa.select(state.sent_ms).where(state.device_id == device_id)
    ).scalar_one_or_none()
    if stored is not None and stored > sent_ms:
        return False
    for table in (device_databox, device_databox_reasons, device_databox_state):
        conn.execute(table.delete().where(table.c.device_id == device_id))
    counts = databox.counts
    conn.execute(
        device_databox_state.insert().values(
            device_id=device_id,
            sent_ms=sent_ms,
            reported_at=now,
            pending=_kept(counts.pending),
            in_flight=_kept(counts.in_flight),
            parked=_kept(counts.parked),
        )
    )
    reasons = [
        {"device_id": device_id, "reason": r, "parked": _kept(n)}
        for r, n in databox.reasons.items()
    ]
    if reasons:
        conn.execute(device_databox_reasons.insert(), reasons)
    parked = {p.op_id: _parked_row(device_id, p, now) for p in databox.parked}
    if parked:
        conn.execute(device_databox.insert(), list(parked.values()))
    return True


def fleet_databox(
    conn: sa.Connection,
    *,
    limit: int,
    offset: int = 0,
    code: str | None = None,
    device_id: str | None = None,
    min_age_s: int | None = None,
    now: datetime | None = None,
) -> list[StuckEntry]:
    """Parked entries across the fleet, oldest stuck first (by the server's estimate)."""
    c = device_databox.c
    query = sa.select(device_databox)
    if code is not None:
        query = query.where(c.code == code)
    if device_id is not None:
        query = query.where(c.device_id == device_id)
    if min_age_s is not None:
        query = query.where(c.parked_at <= (now or datetime.now(UTC)) - _seconds(min_age_s))
    query = query.order_by(c.parked_at, c.device_id, c.op_id).limit(limit).offset(offset)
    return [_stuck(row) for row in conn.execute(query)]


def reason_totals(conn: sa.Connection) -> list[ReasonTotal]:
    """Parked entries by reason across the fleet (from each device's counts), most first."""
    c = device_databox_reasons.c
    parked = sa.func.sum(c.parked)
    rows = conn.execute(
        sa.select(c.reason, parked, sa.func.count(c.device_id))
        .where(c.parked > 0)
        .group_by(c.reason)
        .order_by(parked.desc(), c.reason)
    )
    return [ReasonTotal(reason, int(total), int(n)) for reason, total, n in rows]


def _parked_row(device_id: str, parked: ParkedEntry, now: datetime) -> dict[str, object]:
    return {
        "device_id": device_id,
        "op_id": parked.op_id,
        "collection": parked.collection,
        "record_id": parked.record_id,
        "code": parked.code,
        "message": parked.message,
        "age_s": parked.age_s,
        "reported_at": now,
        "parked_at": now - _seconds(parked.age_s),
    }


def _kept(count: int) -> int:
    return max(0, min(int(count), MAX_KEPT_COUNT))


def _seconds(count: int) -> timedelta:
    """``count`` seconds, at most MAX_AGE_S: a subtraction from now never leaves datetime."""
    return timedelta(seconds=max(0, min(count, MAX_AGE_S)))


def _stuck(row: sa.Row[tuple[object, ...]]) -> StuckEntry:
    data = dict(row._mapping)
    for key in ("reported_at", "parked_at"):
        moment = data[key]
        assert isinstance(moment, datetime)
        data[key] = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return StuckEntry(**data)

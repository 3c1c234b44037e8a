"""The per-device offline audit over a window, and the default window's rollup.

``device_audit`` reads one device's journal in the window (by the index on
(device_id, kind, at_server_ms)): link events for the offline timeline
(timeline.py), attempts by outcome, data-box actions and refusals; its cost grows
with that device's events, not with the fleet. ``refresh_figures`` stores the
default window's figures on the device's status row at each report, which is what
the fleet view (fleet.py) sorts on.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

from .commands import Command, commands_between
from .models import device_status, devices, journal_events, ops
from .timeline import Link, Period, timeline

__all__ = ["DEFAULT_WINDOW_MS", "RETENTION_MS", "Audit", "device_audit", "refresh_figures"]

HOUR_MS = 3_600_000

#: The audit's default window: the last 72 hours.
DEFAULT_WINDOW_MS = 72 * HOUR_MS

#: How far back an audit window may reach: journal events are kept this long
#: (docs/server.md, "Retention").
RETENTION_MS = 30 * 24 * HOUR_MS

#: Parts per million: the failure rate kept as an integer sort key.
PPM = 1_000_000


@dataclass(slots=True)
class Attempts:
    """Sync attempts in the window, by outcome (``ok`` or a failure reason) and channel."""

    total: int = 0
    failed: int = 0
    entries_sent: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    by_outcome: dict[str, int] = field(default_factory=dict)
    by_channel: dict[str, int] = field(default_factory=dict)

    @property
    def failure_rate(self) -> float | None:
        """Failed / total, or None without attempts."""
        return self.failed / self.total if self.total else None


@dataclass(slots=True)
class Audit:
    """One device over one window: time online and offline, attempts, the data box."""

    device_id: str
    name: str
    revoked: bool
    start_ms: int
    end_ms: int
    online_ms: int
    offline_ms: int
    unknown_ms: int
    offline_periods: list[Period]
    attempts: Attempts
    entries_recorded: int
    discarded: int
    resubmitted: int
    refused: int
    parked: int
    queue_depth: int | None
    free_bytes: int | None
    app_version: str | None
    protocol_version: str | None
    last_seen_ms: int | None
    last_sync_ms: int | None
    clock_offset_ms: int | None
    #: Commands created, delivered or answered in the window, with their outcomes.
    commands: list[Command] = field(default_factory=list)


def device_audit(
    conn: sa.Connection, device_id: str, start_ms: int, end_ms: int, *, commands: bool = True
) -> Audit | None:
    """The audit of ``device_id`` over [start_ms, end_ms), or None if no such device."""
    status = conn.execute(_DEVICE, {"device": device_id}).one_or_none()
    if status is None:
        return None
    seen = status.last_seen_ms or 0
    links, kinds = _window(conn, device_id, start_ms, end_ms)
    line = timeline(
        _before(conn, device_id, start_ms), links, start_ms, end_ms, known_until_ms=seen
    )
    actions = Counter(body["action"] for body in kinds["databox"])
    reported = status.last_seen_ms is not None
    return Audit(
        device_id=device_id,
        name=status.name,
        revoked=status.revoked_at is not None,
        start_ms=start_ms,
        end_ms=end_ms,
        online_ms=line.online_ms,
        offline_ms=line.offline_ms,
        unknown_ms=line.unknown_ms,
        offline_periods=line.offline,
        attempts=_attempts(kinds["attempt"]),
        entries_recorded=_recorded(conn, device_id, start_ms, end_ms),
        discarded=actions["discard"],
        resubmitted=actions["resubmit"],
        refused=len(kinds["refused"]),
        parked=status.parked or 0,
        queue_depth=status.queue_depth if status.status_at_ms else None,
        free_bytes=status.free_bytes,
        app_version=status.app_version,
        protocol_version=status.protocol_version,
        last_seen_ms=seen or None,
        last_sync_ms=status.last_sync_ms or None,
        clock_offset_ms=status.offset_ms if reported and seen else None,
        commands=_commands(conn, device_id, start_ms, end_ms) if commands else [],
    )


def _commands(conn: sa.Connection, device_id: str, start_ms: int, end_ms: int) -> list[Command]:
    """The device's commands that moved in the window (commands.py keeps them)."""
    start, end = (datetime.fromtimestamp(ms / 1000, UTC) for ms in (start_ms, end_ms))
    return commands_between(conn, device_id, start, end)


def refresh_figures(conn: sa.Connection, device_id: str, now_ms: int) -> None:
    """Store the default window's figures (ending ``now_ms``) on the device's status row."""
    start = max(now_ms - DEFAULT_WINDOW_MS, 0)
    audit = device_audit(conn, device_id, start, now_ms, commands=False)
    if audit is None:
        return
    attempts = audit.attempts
    rate = attempts.failure_rate
    conn.execute(
        device_status.update()
        .where(device_status.c.device_id == device_id)
        .values(
            figures_at_ms=now_ms,
            offline_ms=audit.offline_ms,
            online_ms=audit.online_ms,
            attempts=attempts.total,
            failed=attempts.failed,
            failure_ppm=0 if rate is None else round(rate * PPM),
        )
    )


_j = journal_events.c
_s = device_status.c

#: The device and its status row (absent before migration 0005 made one: all NULL).
_DEVICE = (
    sa.select(devices.c.name, devices.c.revoked_at, device_status)
    .outerjoin(device_status, _s.device_id == devices.c.id)
    .where(devices.c.id == sa.bindparam("device"))
)

#: Every event of the device in the window, in time order (the (device, time) index).
_WINDOW = (
    sa.select(_j.kind, _j.at_server_ms, _j.channel, _j.up, _j.body_json)
    .where(
        _j.device_id == sa.bindparam("device"),
        _j.at_server_ms >= sa.bindparam("start"),
        _j.at_server_ms < sa.bindparam("end"),
    )
    .order_by(_j.at_server_ms, _j.id)
)

#: Each channel's last link event before the window.
_LAST_BEFORE = (
    sa.select(_j.channel, sa.func.max(_j.at_server_ms).label("at"))
    .where(
        _j.device_id == sa.bindparam("device"),
        _j.kind == "link",
        _j.at_server_ms < sa.bindparam("start"),
    )
    .group_by(_j.channel)
    .subquery()
)
_BEFORE = (
    sa.select(_j.channel, _j.up)
    .join(
        _LAST_BEFORE,
        sa.and_(_j.channel == _LAST_BEFORE.c.channel, _j.at_server_ms == _LAST_BEFORE.c.at),
    )
    .where(_j.device_id == sa.bindparam("device"), _j.kind == "link")
    .order_by(_j.at_server_ms, _j.id)
)

#: Kinds whose stored body the audit reads.
_READ = ("attempt", "databox", "refused")


def _before(conn: sa.Connection, device_id: str, start_ms: int) -> dict[str, bool]:
    """Each channel's state as of ``start_ms``: its last link event before it."""
    rows = conn.execute(_BEFORE, {"device": device_id, "start": start_ms})
    return {row.channel: bool(row.up) for row in rows}


def _window(
    conn: sa.Connection, device_id: str, start_ms: int, end_ms: int
) -> tuple[list[Link], dict[str, list[dict[str, object]]]]:
    """The window's link events, and the bodies of its other events by kind."""
    links: list[Link] = []
    bodies: dict[str, list[dict[str, object]]] = {kind: [] for kind in _READ}
    rows = conn.execute(_WINDOW, {"device": device_id, "start": start_ms, "end": end_ms})
    for row in rows:
        if row.kind == "link":
            links.append(Link(row.at_server_ms, row.channel, bool(row.up)))
        elif row.kind in bodies:
            bodies[row.kind].append(json.loads(row.body_json))
    return links, bodies


def _attempts(bodies: list[dict[str, object]]) -> Attempts:
    attempts = Attempts(total=len(bodies))
    outcomes: Counter[str] = Counter()
    channels: Counter[str] = Counter()
    for body in bodies:
        outcome = str(body["outcome"])
        outcomes[outcome] += 1
        channels[str(body["channel"])] += 1
        attempts.bytes_sent += _int(body["bytes_sent"])
        attempts.bytes_received += _int(body["bytes_received"])
        if outcome == "ok":
            attempts.entries_sent += _int(body["entries"])
    attempts.failed = attempts.total - outcomes["ok"]
    attempts.by_outcome = dict(sorted(outcomes.items()))
    attempts.by_channel = dict(sorted(channels.items()))
    return attempts


def _int(value: object) -> int:
    assert isinstance(value, int)  # stored from a decoded event: always an int
    return value


def _recorded(conn: sa.Connection, device_id: str, start_ms: int, end_ms: int) -> int:
    """Entries of the device the server recorded (first answered) in the window."""
    start = datetime.fromtimestamp(start_ms / 1000, UTC)
    end = datetime.fromtimestamp(end_ms / 1000, UTC)
    count = conn.execute(_RECORDED, {"device": device_id, "start": start, "end": end}).scalar()
    return int(count or 0)


_RECORDED = (
    sa.select(sa.func.count())
    .select_from(ops)
    .where(
        ops.c.device_id == sa.bindparam("device"),
        ops.c.received_at >= sa.bindparam("start"),
        ops.c.received_at < sa.bindparam("end"),
    )
)

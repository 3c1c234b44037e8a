"""The audit arithmetic through ingestion and the database, with fixed server times:
offline periods across window edges, clock skew, duplicate uploads counted once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from protocol import Batch
from server_sync.audit import RETENTION_MS, Audit, device_audit
from server_sync.extension import server_state
from server_sync.models import device_status, journal_events
from server_sync.report import clock_offset, store_report
from server_sync.timeline import Period

from .audit_helpers import T0, Device, M, audit_app, count, enrol

HOUR = 60 * M


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Flask]:
    """The real app on each database."""
    with audit_app(tmp_path, request, request.param) as app:
        yield app


def store(app: Flask, batch: Batch, received_ms: int) -> None:
    """Ingest ``batch``'s report as the view does, received at ``received_ms``."""
    with server_state(app).engine.begin() as conn:
        store_report(conn, batch.device_id, batch, received_ms)


def audit(app: Flask, device_id: str, start: int, end: int) -> Audit:
    with server_state(app).engine.connect() as conn:
        found = device_audit(conn, device_id, start, end)
    assert found is not None
    return found


def skewed_day(device: Device) -> list[Batch]:
    """Two reports of a device whose clock runs an hour behind: offline 10-40 min (wifi
    down), online on cellular 40-100 min, offline 100-130 min, wifi back at 130 min."""
    first = device.batch(
        T0 + 45 * M,
        [
            device.link(T0, True),
            device.link(T0 + 10 * M, False),
            device.link(T0 + 40 * M, True, "cellular"),
            device.attempt(T0 + 42 * M, entries=3, channel="cellular"),
        ],
    )
    second = device.batch(
        T0 + 140 * M,
        [
            device.link(T0 + 100 * M, False, "cellular"),
            device.attempt(T0 + 110 * M, "network_unreachable"),
            device.attempt(T0 + 120 * M, "timeout"),
            device.link(T0 + 130 * M, True),
            device.attempt(T0 + 135 * M, entries=2),
            device.status(T0 + 136 * M, queue_depth=4),
            device.discard(T0 + 137 * M, "op-9"),
        ],
        parked_ages=(600, 3600),
    )
    return [first, second]


def test_offline_periods_are_corrected_for_skew_and_clipped_at_the_window(app: Flask) -> None:
    device_id, _ = enrol(app)
    device = Device(device_id, ahead_ms=-HOUR)  # the device's clock reads an hour late
    first, second = skewed_day(device)
    store(app, first, T0 + 45 * M + 150)  # 150 ms upload: the attempt's exchange wins
    store(app, second, T0 + 140 * M + 90)
    found = audit(app, device_id, T0 + 20 * M, T0 + 120 * M)
    assert found.offline_periods == [
        Period(T0 + 20 * M, T0 + 40 * M),
        Period(T0 + 100 * M, T0 + 120 * M),
    ]
    assert (found.offline_ms, found.online_ms, found.unknown_ms) == (40 * M, 60 * M, 0)
    assert (found.attempts.total, found.attempts.failed) == (2, 1)  # 120 min is outside
    assert found.attempts.by_outcome == {"network_unreachable": 1, "ok": 1}
    assert found.attempts.by_channel == {"cellular": 1, "wifi": 1}
    assert found.clock_offset_ms == HOUR  # server minus device


def test_time_after_the_last_report_and_before_the_first_event_is_unknown(app: Flask) -> None:
    device_id, _ = enrol(app)
    device = Device(device_id, ahead_ms=-HOUR)
    for batch, received in zip(skewed_day(device), (T0 + 45 * M, T0 + 140 * M), strict=True):
        store(app, batch, received)
    late = audit(app, device_id, T0 + 120 * M, T0 + 150 * M)
    assert (late.offline_ms, late.online_ms, late.unknown_ms) == (10 * M, 10 * M, 10 * M)
    early = audit(app, device_id, T0 - 30 * M, T0 + 15 * M)
    assert (early.unknown_ms, early.online_ms, early.offline_ms) == (30 * M, 10 * M, 5 * M)
    assert early.offline_periods == [Period(T0 + 10 * M, T0 + 15 * M)]


def test_a_report_uploaded_twice_is_counted_once(app: Flask) -> None:
    device_id, _ = enrol(app)
    device = Device(device_id)
    first, second = skewed_day(device)
    store(app, first, T0 + 45 * M)
    store(app, second, T0 + 140 * M)
    once = audit(app, device_id, T0, T0 + 140 * M)
    events = count(app, journal_events)
    # The same events again: the same batch replayed, and re-sent under a new batch id.
    store(app, second, T0 + 141 * M)
    store(app, Batch("2.1", "b-again", device_id, (), second.report), T0 + 142 * M)
    twice = audit(app, device_id, T0, T0 + 140 * M)
    assert count(app, journal_events) == events == 11
    assert twice.attempts == once.attempts
    assert (twice.offline_ms, twice.discarded) == (once.offline_ms, once.discarded) == (60 * M, 1)
    assert twice.attempts.total == 4 and twice.attempts.entries_sent == 5


def test_the_status_row_keeps_the_default_window_for_the_fleet(app: Flask) -> None:
    device_id, _ = enrol(app)
    device = Device(device_id, ahead_ms=5 * M)  # five minutes ahead
    for batch, received in zip(skewed_day(device), (T0 + 45 * M, T0 + 140 * M), strict=True):
        store(app, batch, received)
    with server_state(app).engine.connect() as conn:
        row = conn.execute(
            sa.select(device_status).where(device_status.c.device_id == device_id)
        ).one()
    assert (row.offline_ms, row.online_ms) == (60 * M, 80 * M)
    assert (row.attempts, row.failed, row.failure_ppm) == (4, 2, 500_000)
    assert (row.queue_depth, row.app_version, row.protocol_version) == (4, "3.2.0", "2.1")
    assert row.last_seen_ms == row.figures_at_ms == T0 + 140 * M
    assert row.parked == 2 and row.oldest_parked_ms == T0 + 140 * M - 3600 * 1000
    assert row.offset_ms == -5 * M


def test_an_older_report_arriving_late_does_not_roll_the_status_back(app: Flask) -> None:
    device_id, _ = enrol(app)
    device = Device(device_id)
    first, second = skewed_day(device)
    store(app, second, T0 + 140 * M)
    store(app, first, T0 + 141 * M)  # assembled earlier, delivered later
    with server_state(app).engine.connect() as conn:
        row = conn.execute(
            sa.select(device_status).where(device_status.c.device_id == device_id)
        ).one()
    assert (row.queue_depth, row.parked) == (4, 2)


def test_the_offset_prefers_the_attempts_exchange_and_falls_back_to_receipt() -> None:
    device = Device("d", ahead_ms=-HOUR)
    with_attempt = device.batch(T0, [device.attempt(T0 - M)])
    assert with_attempt.report is not None
    assert clock_offset(with_attempt.report, T0 + 2_000) == HOUR  # not HOUR + the upload
    without = device.batch(T0, [device.link(T0 - M, True)])
    assert without.report is not None
    assert clock_offset(without.report, T0 + 2_000) == HOUR + 2_000
    # The clock was changed after the attempt: the two estimates disagree, receipt wins.
    changed = Device("d", ahead_ms=0).batch(T0, [device.attempt(T0 - M)])
    assert changed.report is not None
    assert clock_offset(changed.report, T0 + 2_000) == 2_000


def test_corrected_times_never_fall_after_the_report_arrived(app: Flask) -> None:
    device_id, _ = enrol(app)
    device = Device(device_id)
    # An event stamped an hour after the report was assembled (a clock jump mid-report).
    store(app, device.batch(T0, [device.link(T0 + HOUR, False)]), T0)
    with server_state(app).engine.connect() as conn:
        at = conn.execute(sa.select(journal_events.c.at_server_ms)).scalar()
    assert at == T0


def test_events_older_than_the_retention_are_pruned_at_the_next_report(app: Flask) -> None:
    device_id, _ = enrol(app)
    device = Device(device_id)
    store(app, device.batch(T0, [device.link(T0 - M, True)]), T0)
    later = T0 + RETENTION_MS + HOUR
    store(app, device.batch(later, [device.link(later - M, False)]), later)
    with server_state(app).engine.connect() as conn:
        kept = conn.execute(sa.select(journal_events.c.at_server_ms)).scalars().all()
    assert kept == [later - M]

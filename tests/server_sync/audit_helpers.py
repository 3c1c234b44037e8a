"""Helpers for the audit tests: reports as a device builds them, and an admin token.

``admin_token`` makes a real admin credential (server_sync/admins.py ``add_admin``), the
one ``require_admin`` checks: the only place the audit tests make admin tokens.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from protocol import Batch
from protocol.model import (
    AttemptEvent,
    Databox,
    DataboxCounts,
    DataboxEvent,
    Event,
    LinkEvent,
    ParkedEntry,
    RefusedEvent,
    Report,
    StatusEvent,
)
from server_sync import add_device, create_app
from server_sync.admins import add_admin
from server_sync.extension import server_state

M = 60_000  # a minute in ms
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, server time


def admin_token(app: Flask, role: str = "viewer") -> str:
    """A new admin credential of ``role`` on ``app``."""
    with server_state(app).engine.begin() as conn:
        _, token = add_admin(conn, f"audit {role}", role)
    return token


class Device:
    """Builds one device's journal; its clock runs ``ahead_ms`` ahead of the server's."""

    def __init__(self, device_id: str, ahead_ms: int = 0) -> None:
        self.device_id = device_id
        self.ahead_ms = ahead_ms
        self.count = 0

    def clock(self, server_ms: int) -> int:
        """The device's clock reading at server time ``server_ms``."""
        return server_ms + self.ahead_ms

    def _id(self) -> str:
        self.count += 1
        return f"ev-{self.count}"

    def link(self, server_ms: int, up: bool, channel: str = "wifi") -> LinkEvent:
        """A channel going up or down at server time ``server_ms``."""
        return LinkEvent(self._id(), self.clock(server_ms), channel, up, "os")

    def attempt(
        self, server_ms: int, outcome: str = "ok", entries: int = 1, channel: str = "wifi"
    ) -> AttemptEvent:
        """An attempt ending at server time ``server_ms`` (with the ack's time if ``ok``)."""
        at = self.clock(server_ms)
        answer = server_ms if outcome == "ok" else None
        return AttemptEvent(self._id(), at, channel, at - 500, at, entries, 900, 120, outcome,
                            answer)  # fmt: skip

    def status(self, server_ms: int, queue_depth: int, free_bytes: int = 10**9) -> StatusEvent:
        """The device's state at server time ``server_ms``."""
        return StatusEvent(self._id(), self.clock(server_ms), queue_depth, free_bytes, "3.2.0",
                           "2.1")  # fmt: skip

    def discard(self, server_ms: int, op_id: str) -> DataboxEvent:
        """A parked entry discarded at server time ``server_ms``."""
        return DataboxEvent(self._id(), self.clock(server_ms), "discard", op_id, "duplicate")

    def refused(self, server_ms: int) -> RefusedEvent:
        """A record refused for want of space."""
        return RefusedEvent(self._id(), self.clock(server_ms), "storage_low", 1024)

    def batch(
        self, sent_server_ms: int, journal: list[Event], parked_ages: tuple[int, ...] = ()
    ) -> Batch:
        """A report-only batch assembled at server time ``sent_server_ms``."""
        parked = tuple(
            ParkedEntry(f"op-{i}", "customers", f"c{i}", "too_long", "notes too long", age)
            for i, age in enumerate(parked_ages)
        )
        counts = DataboxCounts(0, 0, len(parked))
        report = Report(
            self.clock(sent_server_ms),
            tuple(journal),
            Databox(counts, {"field_too_long": len(parked)} if parked else {}, parked),
            (),
        )
        return Batch("2.1", f"b-{secrets.token_hex(4)}", self.device_id, (), report)


@contextmanager
def audit_app(tmp_path: Path, request: pytest.FixtureRequest, kind: str) -> Iterator[Flask]:
    """The real app on a SQLite file or a PostgreSQL scratch schema."""
    if kind == "sqlite":
        app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'audit.db'}", "TESTING": True})
    else:
        url = request.getfixturevalue("pg_schema_url")
        app = create_app({"DATABASE_URL": url, "TESTING": True, "AUTO_UPGRADE": False})
    try:
        yield app
    finally:
        server_state(app).engine.dispose()


def enrol(app: Flask, name: str = "rep") -> tuple[str, str]:
    """A new device on ``app``: (device_id, token)."""
    with server_state(app).engine.begin() as conn:
        return add_device(conn, name)


def count(app: Flask, table: sa.Table) -> int:
    """Rows in ``table``."""
    with server_state(app).engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() or 0)

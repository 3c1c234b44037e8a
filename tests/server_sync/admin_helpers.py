"""Helpers for the admin API tests: an admin client, and report parts as the device sends them.

``parked``, ``databox_of`` and ``outcome`` build protocol 2.1's report parts with
defaults.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from protocol.model import Databox, DataboxCounts, Outcome, OutcomeStatus, ParkedEntry
from server_sync.admins import add_admin
from server_sync.extension import server_state
from server_sync.models import admin_log


@dataclass
class AdminClient:
    """Calls the admin API with one admin's token."""

    client: FlaskClient
    token: str
    admin_id: str = ""

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        """GET with this admin's token."""
        return self.client.get(path, headers=self._auth(kwargs), **kwargs)

    def post(self, path: str, **kwargs: Any) -> TestResponse:
        """POST with this admin's token."""
        return self.client.post(path, headers=self._auth(kwargs), **kwargs)

    def command(self, device_id: str, body: Any = None, **kwargs: Any) -> TestResponse:
        """POST a command (``body`` as JSON, or raw ``data=``)."""
        if body is not None:
            kwargs["json"] = body
        return self.post(f"/v1/admin/devices/{device_id}/commands", **kwargs)

    def _auth(self, kwargs: dict[str, Any]) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}


def admin_client(app: Flask, role: str = "admin", name: str = "alice") -> AdminClient:
    """A new admin credential of ``role`` on ``app``, and a client using it."""
    with server_state(app).engine.begin() as conn:
        admin, token = add_admin(conn, name, role)
    return AdminClient(app.test_client(), token, admin.admin_id)


def log_rows(engine: sa.Engine) -> list[dict[str, Any]]:
    """The admin request log, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(admin_log).order_by(admin_log.c.id))
        return [dict(r._mapping) for r in rows]


def parked(
    op_id: str,
    *,
    collection: str = "customers",
    record_id: str = "c1",
    code: str = "too_long",
    message: str = "notes: at most 2000 characters",
    age_s: int = 60,
) -> ParkedEntry:
    """``report.databox.parked[]``."""
    return ParkedEntry(op_id, collection, record_id, code, message, age_s)


def databox_of(
    parked: Sequence[ParkedEntry] = (),
    counts: Mapping[str, int] | None = None,
    reasons: Mapping[str, int] | None = None,
) -> Databox:
    """``report.databox``; counts not given are 0."""
    by_state = {"pending": 0, "in_flight": 0, "parked": 0, **(counts or {})}
    return Databox(DataboxCounts(**by_state), dict(reasons or {}), tuple(parked))


def outcome(
    command_id: str,
    status: OutcomeStatus = "done",
    code: str | None = None,
    message: str | None = None,
    new_op_id: str | None = None,
) -> Outcome:
    """``report.outcomes[]``."""
    return Outcome(command_id, status, code, message, new_op_id)

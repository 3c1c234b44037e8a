"""The admin side of a batch, in the batch's own transaction: put the device's open
commands in the ack.

Called by the batch view after ``apply_batch`` and ``report.store_report`` (which stores
the report's data box and command outcomes), on the same connection, so a command is
marked delivered only if the ack that carries it is committed, and one the report just
answered is not sent again.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

import sqlalchemy as sa

from protocol import Ack, Batch
from protocol.constants import REPORT_MINOR

from .commands import pending_commands


def deliver(conn: sa.Connection, device_id: str, batch: Batch, ack: Ack, now: datetime) -> Ack:
    """``ack`` with the device's open commands (if ``batch``'s version reads them)."""
    if not _reads_commands(batch.protocol_version):
        return ack  # a 2.0 device refuses an ack with members it does not know
    commands = pending_commands(conn, device_id, now=now)
    if not commands:
        return ack
    return dataclasses.replace(ack, commands=tuple(c.to_wire() for c in commands))


def _reads_commands(version: str) -> bool:
    """Whether a device writing ``version`` (already checked: MAJOR.MINOR) reads commands."""
    minor = version.partition(".")[2]
    return minor.isascii() and minor.isdigit() and int(minor) >= REPORT_MINOR

"""The admin side of a batch, in the batch's own transaction: keep the report's data box
and command outcomes, and put the device's open commands in the ack.

Called by the batch view right after ``apply_batch``, on the same connection, so an
ack means the data box and outcomes are stored, and a command is marked delivered
only if the ack that carries it is committed.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

import sqlalchemy as sa

from protocol import Ack, Batch
from protocol.constants import REPORT_MINOR

from .commands import pending_commands, store_outcomes
from .databox import store_databox


def deliver(conn: sa.Connection, device_id: str, batch: Batch, ack: Ack, now: datetime) -> Ack:
    """Store ``batch``'s data box and outcomes; ``ack`` with the device's open commands."""
    report = batch.report
    if report is not None:
        store_databox(conn, device_id, report.databox, now, sent_ms=report.sent_ms)
        if report.outcomes:
            store_outcomes(conn, device_id, report.outcomes, now)
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

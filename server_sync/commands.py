"""Commands an admin sends a device (resubmit or discard a parked entry), and their outcomes.

A command rides on the device's sync answers: every ack carries the device's open
commands (``pending_commands``) until the device reports an outcome for it
(``store_outcomes``), so delivery is at-least-once and the device carries each
command id out at most once. A command's state moves only along ``TRANSITIONS``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal, cast

import sqlalchemy as sa
import uuid6

from protocol import model
from protocol.constants import MAX_COMMANDS_PER_ACK, MAX_ID_LENGTH
from protocol.model import Outcome

from .errors import Conflict, UnknownDevice
from .models import device_commands, devices

log = logging.getLogger("server_sync.commands")

Kind = Literal["resubmit", "discard"]
State = Literal["pending", "delivered", "done", "failed"]

KINDS: tuple[Kind, ...] = ("resubmit", "discard")

#: Legal moves of a command's state: delivered when an ack carries it, done or failed
#: when the device reports; an outcome may overtake the delivered mark (a lost answer).
TRANSITIONS: dict[State, frozenset[State]] = {
    "pending": frozenset(("delivered", "done", "failed")),
    "delivered": frozenset(("done", "failed")),
    "done": frozenset(),
    "failed": frozenset(),
}

#: States whose commands go out with every ack.
OPEN: tuple[State, ...] = ("pending", "delivered")


#: Characters of a command's reason: the wire's bound on it (an ack's ``commands[].reason``
#: is an id-like string of 1-64 characters; a longer one would make the device refuse the
#: whole ack).
MAX_REASON = MAX_ID_LENGTH

#: The reason a resubmit carries when the admin gave none (the wire needs one).
RESUBMIT_REASON = "resubmitted by an admin"


@dataclass(frozen=True, slots=True)
class Command:
    """A command and what became of it."""

    command_id: str
    device_id: str
    kind: Kind
    op_id: str
    reason: str
    state: State
    created_by: str
    created_at: datetime
    delivered_at: datetime | None
    deliveries: int
    outcome_at: datetime | None
    outcome_code: str | None
    outcome_message: str | None
    new_op_id: str | None

    def to_wire(self) -> model.Command:
        """The command as an ack carries it."""
        return model.Command(self.command_id, self.kind, self.op_id, self.reason)


def create_command(
    conn: sa.Connection,
    device_id: str,
    kind: Kind,
    op_id: str,
    reason: str,
    *,
    admin_id: str,
    now: datetime | None = None,
) -> tuple[Command, bool]:
    """Queue a command; (it, True), or (the open one, False) if the same one is open.

    Raises UnknownDevice, or Conflict if another kind of command on that entry is open.
    """
    if conn.execute(sa.select(devices.c.id).where(devices.c.id == device_id)).first() is None:
        raise UnknownDevice(f"no device {device_id!r}", {"device_id": device_id})
    c = device_commands.c
    open_ = conn.execute(
        sa.select(device_commands).where(
            c.device_id == device_id, c.op_id == op_id, c.state.in_(OPEN)
        )
    ).first()
    if open_ is not None:
        found = _command(open_)
        if found.kind != kind:
            raise Conflict(
                f"a {found.kind} command for {op_id} is still {found.state}",
                {"command_id": found.command_id, "kind": found.kind, "state": found.state},
            )
        return found, False
    if not reason.strip():
        reason = RESUBMIT_REASON if kind == "resubmit" else reason
    row = {
        "id": str(uuid6.uuid7()),
        "device_id": device_id,
        "kind": kind,
        "op_id": op_id,
        "reason": reason,
        "state": "pending",
        "created_by": admin_id,
        "created_at": now or datetime.now(UTC),
        "delivered_at": None,
        "deliveries": 0,
        "outcome_at": None,
        "outcome_code": None,
        "outcome_message": None,
        "new_op_id": None,
    }
    conn.execute(device_commands.insert().values(row))
    return _command(row), True


def pending_commands(
    conn: sa.Connection, device_id: str, *, now: datetime | None = None
) -> list[Command]:
    """The commands this ack carries (open ones, oldest first), marked delivered."""
    c = device_commands.c
    rows = conn.execute(
        sa.select(device_commands)
        .where(c.device_id == device_id, c.state.in_(OPEN))
        .order_by(c.id)
        .limit(MAX_COMMANDS_PER_ACK)
    )
    found = [_command(row) for row in rows]
    if found:
        conn.execute(
            device_commands.update()
            .where(c.id.in_([f.command_id for f in found]))
            .values(
                state="delivered",
                deliveries=c.deliveries + 1,
                delivered_at=sa.func.coalesce(c.delivered_at, now or datetime.now(UTC)),
            )
        )
    return found


def store_outcomes(
    conn: sa.Connection, device_id: str, outcomes: Iterable[Outcome], now: datetime
) -> list[str]:
    """Record reported outcomes; return the ids that changed. Idempotent: an outcome for a
    command already done or failed is ignored, one for an unknown id is ignored and logged."""
    outcomes = list(outcomes)
    known = _by_id(conn, device_id, [o.command_id for o in outcomes])
    changed: list[str] = []
    for outcome in outcomes:
        command = known.get(outcome.command_id)
        if command is None:
            log.warning(
                "device %s reported an outcome for unknown command %r",
                device_id,
                outcome.command_id[:64],
            )
            continue
        status = cast(State, outcome.status)
        if status not in TRANSITIONS[command.state] or status not in ("done", "failed"):
            continue  # already answered (a replayed report), or not an outcome
        _finish(conn, command.command_id, outcome, now)
        known[command.command_id] = _replace_state(command, status)
        changed.append(command.command_id)
    return changed


def list_commands(
    conn: sa.Connection, device_id: str, *, limit: int, before: str | None = None
) -> list[Command]:
    """A device's commands, newest first, ``limit`` of them older than ``before`` (an id)."""
    c = device_commands.c
    query = sa.select(device_commands).where(c.device_id == device_id)
    if before is not None:
        query = query.where(c.id < before)
    rows = conn.execute(query.order_by(c.id.desc()).limit(limit))
    return [_command(row) for row in rows]


def commands_between(
    conn: sa.Connection, device_id: str, start: datetime, end: datetime
) -> list[Command]:
    """A device's commands created, delivered or answered in [start, end), oldest first
    (for the audit: each command once, with every time it moved)."""
    c = device_commands.c
    moments = (c.created_at, c.delivered_at, c.outcome_at)
    in_window = sa.or_(*(sa.and_(moment >= start, moment < end) for moment in moments))
    rows = conn.execute(
        sa.select(device_commands)
        .where(c.device_id == device_id, in_window)
        .order_by(c.created_at, c.id)
    )
    return [_command(row) for row in rows]


def open_count(conn: sa.Connection) -> int:
    """Commands across the fleet not yet answered (pending or delivered)."""
    c = device_commands.c
    query = sa.select(sa.func.count()).select_from(device_commands).where(c.state.in_(OPEN))
    return int(conn.execute(query).scalar_one())


def _by_id(conn: sa.Connection, device_id: str, ids: Sequence[str]) -> dict[str, Command]:
    if not ids:
        return {}
    c = device_commands.c
    rows = conn.execute(
        sa.select(device_commands).where(c.device_id == device_id, c.id.in_(set(ids)))
    )
    return {row.id: _command(row) for row in rows}


def _finish(conn: sa.Connection, command_id: str, outcome: Outcome, now: datetime) -> None:
    c = device_commands.c
    conn.execute(
        device_commands.update()
        .where(c.id == command_id, c.state.in_(OPEN))
        .values(
            state=outcome.status,
            outcome_at=now,
            outcome_code=outcome.code,
            outcome_message=outcome.message,
            new_op_id=outcome.new_op_id,
        )
    )


def _replace_state(command: Command, state: State) -> Command:
    return replace(command, state=state)


def _command(row: sa.Row[tuple[object, ...]] | dict[str, object]) -> Command:
    data = dict(row._mapping) if isinstance(row, sa.Row) else dict(row)
    return Command(
        command_id=str(data["id"]),
        device_id=str(data["device_id"]),
        kind=cast(Kind, data["kind"]),
        op_id=str(data["op_id"]),
        reason=str(data["reason"]),
        state=cast(State, data["state"]),
        created_by=str(data["created_by"]),
        created_at=cast(datetime, _utc(data["created_at"])),
        delivered_at=_utc(data["delivered_at"]),
        deliveries=int(cast(int, data["deliveries"])),
        outcome_at=_utc(data["outcome_at"]),
        outcome_code=cast(str | None, data["outcome_code"]),
        outcome_message=cast(str | None, data["outcome_message"]),
        new_op_id=cast(str | None, data["new_op_id"]),
    )


def _utc(moment: object) -> datetime | None:
    # SQLite keeps no offset; everything the server writes is UTC.
    if moment is None:
        return None
    assert isinstance(moment, datetime)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)

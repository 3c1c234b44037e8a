"""Commands from the server, carried out on the device at most once each.

Every ack carries every command the server has not yet seen an outcome for, so a
command arrives again and again until a report with its outcome was acknowledged.
Each is carried out once: its id goes into ``commands`` (_tables.py) with the
outcome, in the very transaction that makes the change (the data box's hook, so a
kill cannot leave the change made and the command unmarked, which would run it
again and report it failed). A command that cannot be carried out (no such entry,
the entry is not parked, a bad reason, any error) is marked ``failed`` with a code
and a message: it never raises into the sync, which goes on.

Failure codes: ``unknown_entry`` (no entry with that op_id on this device),
``not_parked`` (the entry is in another state: already resubmitted or discarded,
or not refused yet), ``invalid_command`` (a kind or reason the device cannot act
on), ``error`` (anything else; the message says what).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from protocol.constants import MAX_MESSAGE_LENGTH
from protocol.errors import EntryInvalid
from protocol.model import Command, Outcome
from protocol.registry import Registry

from . import _fixes as fixes
from ._databox import DataBox
from ._journal import Journal, message_text
from ._tables import commands_t
from .errors import IllegalTransition, UnknownEntry


class Commands:
    """Carries out commands through the data box; keeps their outcomes until reported."""

    def __init__(
        self, box: DataBox, journal: Journal, clock: Callable[[], float], registry: Registry
    ) -> None:
        self._box = box
        self._registry = registry
        self._store = box.outbox.store
        self._journal = journal
        self._clock = clock
        self._local = threading.local()

    # -- carrying out ----------------------------------------------------------------

    def carry_out(self, commands: Iterable[Command]) -> int:
        """Carry out each command not carried out before; return how many were new."""
        orders = list(commands)
        if not orders:
            return 0
        done = self._known([o.command_id for o in orders])
        fresh = 0
        for order in orders:
            if order.command_id in done:
                continue
            done.add(order.command_id)
            self._run(order)
            fresh += 1
        return fresh

    def on_action(
        self, conn: Connection, action: str, op_id: str, reason: str, new_op_id: str | None
    ) -> None:
        """The data box's hook, inside its transaction: journal it; mark the command done."""
        order: Command | None = getattr(self._local, "order", None)
        command_id = order.command_id if order is not None else None
        self._journal.note_databox(
            action, op_id, reason, new_op_id=new_op_id, command_id=command_id, conn=conn
        )
        if order is not None and order.op_id == op_id:
            self._mark(conn, order.command_id, "done", new_op_id=new_op_id)

    def _run(self, order: Command) -> None:
        self._local.order = order
        try:
            new_op_id = self._act(order)
        except UnknownEntry:
            self._fail(order, "unknown_entry", f"no entry {order.op_id} on this device")
            return
        except IllegalTransition as exc:
            self._fail(order, "not_parked", f"entry {order.op_id} is {exc.src}, not parked")
            return
        except (ValueError, EntryInvalid) as exc:
            self._fail(order, "invalid_command", str(exc))
            return
        except Exception as exc:  # one bad command never stops the sync
            self._fail(order, "error", f"{type(exc).__name__}: {exc}")
            return
        finally:
            self._local.order = None
        if not self._known([order.command_id]):  # the hook marks it; this is the fallback
            with self._store.write("mark a command done") as conn:
                self._mark(conn, order.command_id, "done", new_op_id=new_op_id)

    def _act(self, order: Command) -> str | None:
        """Resubmit the parked entry as it is, or discard it; the new op_id of a resubmit.

        The same paths as ``SyncClient.resubmit``/``discard`` (_fixes.py): the reason
        checked as an audited reason, the entry validated again before it is recorded.
        """
        if order.kind == "discard":
            self._box.discard(order.op_id, fixes.check_reason(order.reason))
            return None
        if order.kind != "resubmit":
            raise ValueError(f"unknown command kind {order.kind!r}")
        return fixes.resubmit(self._box, self._registry, order.op_id, None, order.reason)

    def _fail(self, order: Command, code: str, message: str) -> None:
        with self._store.write("mark a command failed") as conn:
            self._mark(conn, order.command_id, "failed", code=code, message=message)

    def _mark(
        self,
        conn: Connection,
        command_id: str,
        status: str,
        *,
        code: str | None = None,
        message: str | None = None,
        new_op_id: str | None = None,
    ) -> None:
        conn.execute(
            commands_t.insert().values(
                command_id=command_id,
                status=status,
                code=code,
                message=None if message is None else message_text(message, MAX_MESSAGE_LENGTH),
                new_op_id=new_op_id,
                done_at=self._clock(),
            )
        )

    def _known(self, command_ids: Sequence[str]) -> set[str]:
        """Which of these command ids were carried out already."""
        query = sa.select(commands_t.c.command_id).where(
            commands_t.c.command_id.in_(list(command_ids))
        )
        with self._store.read("read commands") as conn:
            return set(conn.scalars(query))

    # -- reporting -------------------------------------------------------------------

    def outcomes(self, limit: int) -> list[Outcome]:
        """Up to ``limit`` outcomes not yet reported, oldest first, as the wire has them."""
        query = (
            sa.select(commands_t)
            .where(commands_t.c.reported_at.is_(None))
            .order_by(commands_t.c.done_at, commands_t.c.command_id)
            .limit(limit)
        )
        with self._store.read("read command outcomes") as conn:
            rows = conn.execute(query).all()
        return [_outcome(r) for r in rows]

    def reported(self, command_ids: Sequence[str], conn: Connection) -> None:
        """Mark outcomes reported (the ack of the batch that carried them arrived)."""
        if command_ids:
            conn.execute(
                commands_t.update()
                .where(
                    commands_t.c.command_id.in_(list(command_ids)),
                    commands_t.c.reported_at.is_(None),
                )
                .values(reported_at=self._clock())
            )

    def log(self) -> list[dict[str, Any]]:
        """Every command carried out and still kept, with its outcome, oldest first."""
        query = sa.select(commands_t).order_by(commands_t.c.done_at, commands_t.c.command_id)
        with self._store.read("read commands") as conn:
            return [r._asdict() for r in conn.execute(query)]


def _outcome(row: Any) -> Outcome:
    return Outcome(row.command_id, row.status, row.code, row.message, row.new_op_id)

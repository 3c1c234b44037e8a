"""Reports: the journal, the data box and command outcomes, carried up with the batches.

Theory of operation
-------------------
Every channel of a SyncClient is wrapped in a ``JournaledChannel``. Its ``send``
journals the attempt (start, end, channel, entries, bytes each way, ``ok`` or the
failure's reason, the ack's server time) and the link's transition, and attaches a
report to the *first* batch of each drain pass (``Reporter.begin_pass``): the
unacknowledged journal events (at most 500), the data box now, and the outcomes of
commands not yet reported. A retry of that batch carries the report again, rebuilt:
the same event ids and any new ones (the server stores a replay once). When the
ack of a batch that carried a report arrives, its events and outcomes are marked
acknowledged, in one transaction with the attempt's own event; never before, so
a lost ack or a kill sends them again. Every later batch of the pass goes as it
is: nothing is looked up or rebuilt for it.

A pass with nothing to send sends a report-only batch (no entries) when there is
something worth telling (``Journal.urgent``, unreported outcomes) or the last
report is older than ``report_every``, so the device picks up commands: once per
pass, one try, never retried within the pass (an empty outbox never waits on the
network); a 429/503's Retry-After goes to the backoff like any other's.

Commands in any ack are carried out (_commands.py) after the ack is journaled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from uuid6 import uuid7

from protocol.codec import assemble_batch, compress, decode_entry, encode_ack, encode_report
from protocol.constants import (
    MAX_JOURNAL_EVENTS_PER_BATCH,
    MAX_MESSAGE_LENGTH,
    MAX_OUTCOMES_PER_REPORT,
    MAX_PARKED_PER_REPORT,
    MAX_REASONS_PER_REPORT,
    PROTOCOL_MAJOR,
    REPORT_MINOR,
)
from protocol.errors import ClientError
from protocol.model import Ack, Databox, DataboxCounts, ParkedEntry, Report

from ._batches import OutgoingBatch
from ._boxview import BoxView
from ._channels import Channel
from ._commands import Commands
from ._failures import classify
from ._journal import Journal, message_text, name_text
from ._outbox import Outbox
from ._states import State
from ._tables import entries_t
from .errors import LinkFailure, SyncStopped, TransportError

_PARKED = (
    sa.select(entries_t.c.op_id, entries_t.c.body, entries_t.c.code, entries_t.c.message)
    .add_columns(entries_t.c.created_at)
    .where(entries_t.c.state == State.PARKED.value)
    .order_by(entries_t.c.seq)
    .limit(MAX_PARKED_PER_REPORT)
)
log = logging.getLogger("client_sync.journal")


@dataclass(frozen=True, slots=True)
class Try:
    """One send of a batch: the channel, the batch as it went, when, the bytes back."""

    channel: str
    batch: OutgoingBatch
    started_ms: int
    received: int


class Sent:
    """A report as it went out with a batch: what its ack acknowledges."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.event_ids = [e.id for e in report.journal]
        self.command_ids = [o.command_id for o in report.outcomes]


class Reporter:
    """Builds reports, attaches them to batches, and acknowledges them; one per client."""

    def __init__(
        self,
        outbox: Outbox,
        journal: Journal,
        commands: Commands,
        view: BoxView,
        *,
        clock: Callable[[], float],
        free_bytes: Callable[[], int],
        app_version: str,
    ) -> None:
        self._outbox = outbox
        self._store = outbox.store
        self.journal = journal
        self.commands = commands
        self.config = outbox.config
        self._view = view
        self._clock = clock
        self._free_bytes = free_bytes
        self._app_version = name_text(app_version)
        major, _, minor = outbox.config.protocol_version.partition(".")
        #: Only protocol 2.1 and later carry reports (an old build's batches go without).
        self.speaks = major == str(PROTOCOL_MAJOR) and int(minor) >= REPORT_MINOR
        #: A report was acknowledged in this drain pass.
        self._carried = False
        self._last_report: float | None = None
        self._last_status: float | None = None

    def begin_pass(self) -> None:
        """A drain pass starts: its first batch carries a report."""
        self._carried = False

    # -- building and attaching --------------------------------------------------------

    def attach(self, batch: OutgoingBatch) -> tuple[OutgoingBatch, Sent | None]:
        """``batch`` with a report, if it is the first of the pass; else as it is."""
        if self._carried or not self.speaks:
            return batch, None
        sent = Sent(self.build())
        carrying = with_report(batch, sent.report)
        if len(carrying.body) > self._outbox.config.max_batch_bytes:
            return batch, None  # a full batch goes without; a later one of the pass reports
        return carrying, sent

    def build(self) -> Report:
        """A report now: a status event if one is due, the unsent events, box, outcomes."""
        now = self._clock()
        box = self._databox(now)
        if self._last_status is None or now - self._last_status >= self.config.report_every:
            self._status(box.counts)
            self._last_status = now
        return Report(
            sent_ms=int(now * 1000),
            journal=tuple(self.journal.unsent(MAX_JOURNAL_EVENTS_PER_BATCH)),
            databox=box,
            outcomes=tuple(self.commands.outcomes(MAX_OUTCOMES_PER_REPORT)),
        )

    def due(self) -> bool:
        """Whether a pass with nothing to send should send a report-only batch."""
        if self._carried or not self.speaks:
            return False
        last = self._last_report
        if last is None or self._clock() - last >= self.config.report_every:
            return True
        return self.journal.urgent() or bool(self.commands.outcomes(1))

    def report_only(self, channel: Channel) -> Ack:
        """Send a report in a batch of no entries, once (a failure is journaled, raised)."""
        batch = assemble_empty(self._outbox.config.protocol_version, self._outbox.device_id)
        try:
            return channel.send(batch)
        except ClientError as exc:
            log.info("report-only batch on %s failed: %s", channel.name, exc)
            raise

    def _status(self, counts: DataboxCounts) -> None:
        self.journal.note(
            "status",
            {
                "queue_depth": counts.pending + counts.in_flight,
                "free_bytes": max(int(self._free_bytes()), 0),
                "app_version": self._app_version,
                "protocol_version": self._outbox.config.protocol_version,
            },
        )

    def _databox(self, now: float) -> Databox:
        """The data box: counts by state and parked entries by reason (the app's own
        ``BoxView.counts``, one home), and the oldest parked entries."""
        counts = self._view.counts()
        with self._store.read("read the data box") as conn:
            rows = conn.execute(_PARKED).all()
        return Databox(
            DataboxCounts(**counts.states),
            dict(sorted(counts.reasons.items())[:MAX_REASONS_PER_REPORT]),
            tuple(_parked(row, now) for row in rows),
        )

    # -- answers ---------------------------------------------------------------------

    def answered(self, attempt: Try, report: Sent | None, ack: Ack) -> None:
        """Journal an answered attempt; acknowledge what its report carried; run commands."""
        ok = ack.batch_id == attempt.batch.batch_id
        with self._store.write("journal an attempt") as conn:
            self.journal.link(attempt.channel, True, "sync", conn)
            fields = self._attempt(attempt, "ok" if ok else "server_error", ack)
            self.journal.note("attempt", fields, conn)
            if ok and report is not None:
                self.journal.acknowledge(report.event_ids, conn)
                self.commands.reported(report.command_ids, conn)
        if ok and report is not None:
            self._carried = True
            self._last_report = self._clock()
        if ok:
            self.commands.carry_out(ack.commands)

    def failed(self, attempt: Try, exc: Exception) -> None:
        """Journal a failed attempt, and the link's state if the failure tells it."""
        with self._store.write("journal an attempt") as conn:
            if isinstance(exc, (TransportError, SyncStopped)):  # LinkFailure: not reached
                up = not isinstance(exc, LinkFailure)
                self.journal.link(attempt.channel, up, "sync", conn)
            fields = self._attempt(attempt, attempt_outcome(exc), None)
            self.journal.note("attempt", fields, conn)

    def _attempt(self, attempt: Try, outcome: str, ack: Ack | None) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "channel": name_text(attempt.channel),
            "started_ms": attempt.started_ms,
            "ended_ms": self.journal.now_ms(),
            "entries": len(attempt.batch),
            "bytes_sent": len(attempt.batch.gzipped),
            "bytes_received": attempt.received,
            "outcome": outcome,
        }
        if ack is not None and ack.server_time_ms is not None:
            fields["server_time_ms"] = ack.server_time_ms
        return fields


class JournaledChannel:
    """A channel whose every send is journaled, and whose first send of a pass reports."""

    def __init__(self, inner: Channel, reporter: Reporter) -> None:
        self.inner = inner
        self.name = inner.name
        self.metered = inner.metered
        self._reporter = reporter

    def send(self, batch: OutgoingBatch) -> Ack:
        """Send ``batch`` (with a report, if it is the pass's first); journal the attempt."""
        reporter = self._reporter
        sent, report = reporter.attach(batch)
        started = reporter.journal.now_ms()
        try:
            ack = self.inner.send(sent)
        except Exception as exc:
            reporter.failed(Try(self.name, sent, started, self._received(None)), exc)
            raise
        reporter.answered(Try(self.name, sent, started, self._received(ack)), report, ack)
        return ack

    def _received(self, ack: Ack | None) -> int:
        """Bytes of the answer: as the channel counted them (HttpChannel), else the ack's."""
        counted = getattr(self.inner, "last_received", None)
        if isinstance(counted, int):
            return counted
        return 0 if ack is None else len(encode_ack(ack))

    def close(self) -> None:
        """Close the wrapped channel, if it can be closed."""
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()


def with_report(batch: OutgoingBatch, report: Report) -> OutgoingBatch:
    """``batch`` carrying ``report``: the bytes ``codec.assemble_batch`` gives with it
    (``report`` sorts last, so it goes in before the closing brace; a test pins it)."""
    body = batch.body[:-1] + b',"report":' + encode_report(report) + b"}"
    return OutgoingBatch(
        batch_id=batch.batch_id,
        device_id=batch.device_id,
        protocol_version=batch.protocol_version,
        op_ids=batch.op_ids,
        tx_ids=batch.tx_ids,
        body=body,
        gzipped=compress(body),
    )


def assemble_empty(protocol_version: str, device_id: str) -> OutgoingBatch:
    """A batch of no entries (it goes out only with a report attached)."""
    batch_id = str(uuid7())
    body = assemble_batch(protocol_version, batch_id, device_id, [])
    return OutgoingBatch(batch_id, device_id, protocol_version, (), (), body, compress(body))


def _parked(row: Any, now: float) -> ParkedEntry:
    entry = decode_entry(row.body)
    return ParkedEntry(
        op_id=row.op_id,
        collection=entry.collection,
        record_id=entry.record_id,
        code=name_text(row.code or "unknown"),
        message=message_text(row.message or "", MAX_MESSAGE_LENGTH),
        age_s=max(int(now - row.created_at), 0),
    )


def attempt_outcome(exc: BaseException) -> str:
    """The reason a failed attempt is journaled with (``_failures.classify``, one home)."""
    return classify(exc).value

"""One drain pass: take a batch, send it, apply the ack, until the outbox is empty.

The retry policy (_retry.py) wraps each attempt; a transaction the server keeps
failing on is isolated (_isolate.py); batch n+1 is taken while n is on the wire
(_prefetch.py); clock recovery runs after each applied ack (_clock.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from protocol.errors import ClientError, FieldsyncError
from protocol.model import Ack
from protocol.reasons import Reason

from ._batches import OutgoingBatch
from ._channels import Channel
from ._clock import ServerClock, heal
from ._databox import DataBox
from ._failures import classify
from ._isolate import Group, Isolation
from ._outbox import Applied
from ._prefetch import Prefetch
from ._reads import Reads
from ._retry import Backoff, OutOfTime
from ._states import State
from .errors import AckMismatch, SyncStopped, TransportError

#: meta key holding why syncing last stopped, for tools such as ``fieldsync status``.
STOPPED_KEY = "sync_stopped"

#: Verdict code of a transaction parked by the client: the server kept failing on it.
SERVER_ERROR = "server_error"


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one drain pass did: batches acked, entries in them by verdict, what is left.

    ``remaining`` entries are still pending; ``last_error`` says why (None: drained)
    and ``reason`` is its failure code (``protocol.reasons.Reason``); ``failures``
    counts failed sends in this pass; ``timed_out`` is True when the pass ended at its
    time bound; ``held`` counts transactions set aside while the client isolates one
    the server keeps failing on (docs/client.md).
    """

    batches: int = 0
    sent: int = 0
    applied: int = 0
    duplicate: int = 0
    parked: int = 0
    remaining: int = 0
    last_error: ClientError | None = None
    conflict: int = 0
    failures: int = 0
    timed_out: bool = False
    held: int = 0

    @property
    def reason(self) -> Reason | None:
        """The failure code of ``last_error`` (None when no send failed)."""
        last = self.last_error
        return classify(last) if isinstance(last, TransportError | SyncStopped) else None

    @property
    def why(self) -> str | None:
        """One line on why entries remain (None when nothing does)."""
        if not self.remaining:
            return None
        last = self.last_error
        tag = f"[{self.reason}] " if self.reason else ""
        cause = f"{tag}{last}" if last else "no failure recorded"
        bound = "timed out; " if self.timed_out else ""
        return f"{self.remaining} pending after {self.failures} failed sends: {bound}{cause}"


class _Halted(Exception):
    """Internal: stop() or close() asked the drain to end; never escapes the client."""


class Drainer:
    """Drains one outbox through a client's channels; remembers why it last stopped."""

    def __init__(
        self,
        box: DataBox,
        backoff: Backoff,
        isolation: Isolation,
        server_clock: ServerClock,
        *,
        halt: threading.Event,
        sleep: Callable[[float], object],
        monotonic: Callable[[], float],
    ) -> None:
        self._box = box
        self._outbox = box.outbox
        self._reads: Reads = box.reads
        self._backoff = backoff
        self._isolation = isolation
        self._server_clock = server_clock
        self._halt = halt
        self._sleep = sleep
        self._monotonic = monotonic
        self.prefetch: Prefetch | None = None
        self.failures = 0
        self.stopped: SyncStopped | None = None
        self.last_error: FieldsyncError | None = None

    def backoff_failures(self) -> int:
        """Failed sends in a row, as the retry policy counts them."""
        return self._backoff.failures

    def run(self, deadline: float | None = None) -> SyncReport:
        """One drain pass, bounded by ``deadline`` (monotonic; None: no bound)."""
        self.prefetch = Prefetch(self._take_ordinary, self._outbox.release)
        try:
            return self._pass(deadline)
        finally:
            self.prefetch.close()
            self.prefetch = None

    def _pass(self, deadline: float | None) -> SyncReport:
        batches = sent = applied = duplicate = conflict = parked = 0
        error: ClientError | None = None
        timed_out = False
        self.failures = 0
        results: list[Applied | Future[Applied]] = []
        while True:
            try:
                if deadline is not None and self._monotonic() >= deadline:
                    raise OutOfTime(None)
                done = self._backoff.run(
                    self._attempt, sleep=self._sleep, halt=self._halt, deadline=deadline
                )
            except OutOfTime as exc:
                timed_out = True
                last = exc.last if isinstance(exc.last, ClientError) else None
                error = last or self.last_error_as_client()
                break
            except TransportError as exc:
                error = exc
                self.last_error = exc
                break
            except SyncStopped as exc:
                error = exc
                self.last_error = exc
                self.stopped = exc
                self._outbox.store.set_meta(STOPPED_KEY, describe(exc))
                break
            except _Halted:
                break
            if done is None:
                break
            batch, outcome = done
            batches += 1
            sent += len(batch)
            results.append(outcome)
        for outcome in results:
            result = outcome.result() if isinstance(outcome, Future) else outcome
            applied += result.applied
            duplicate += result.duplicate
            conflict += result.conflict
            parked += result.parked
        totals = (batches, sent, applied, duplicate, parked, conflict)
        return self.report(totals, error=error, timed_out=timed_out)

    def report(
        self,
        totals: tuple[int, ...] = (0,) * 6,
        *,
        error: ClientError | None,
        timed_out: bool,
    ) -> SyncReport:
        batches, sent, applied, duplicate, parked, conflict = totals
        counts = self._reads.stats()
        return SyncReport(
            batches=batches,
            sent=sent,
            applied=applied,
            duplicate=duplicate,
            parked=parked,
            remaining=counts[State.PENDING] + counts[State.IN_FLIGHT],
            last_error=error,
            conflict=conflict,
            failures=self.failures,
            timed_out=timed_out,
            held=self._isolation.held_count(),
        )

    def last_error_as_client(self) -> ClientError | None:
        last = self.last_error
        return last if isinstance(last, ClientError) else None

    def _attempt(self, channel: Channel) -> tuple[OutgoingBatch, Applied | Future[Applied]] | None:
        """One try: take a batch, send it on ``channel``, apply the ack (on the worker)."""
        if self._halt.is_set():
            raise _Halted
        taken = self._take(channel.metered)
        if taken is None:
            return None
        batch, group = taken
        if group is None and self._isolation.idle() and self.prefetch is not None:
            self.prefetch.start(channel.metered)  # batch n+1 is taken while n is sent
        try:
            ack = channel.send(batch)
            _check_ack(batch, ack, channel.name)
        except Exception as exc:
            if self.prefetch is not None:
                self.prefetch.drop()
            self.failures += 1
            if isinstance(exc, FieldsyncError):
                self.last_error = exc  # shown by status() while the retry waits
            if self._isolation.failed(list(batch.tx_ids), group, exc):
                self._outbox.park(batch, SERVER_ERROR, _server_error(exc, self._isolation))
                return batch, Applied(parked=len(batch))
            self._outbox.release(batch)
            raise
        self._isolation.succeeded(group)
        self._backoff.succeeded()
        self.last_error = None
        if self.stopped is not None:
            self.stopped = None
            self._outbox.store.set_meta(STOPPED_KEY, None)

        def apply() -> Applied:
            result = self._outbox.apply(batch, ack)
            heal(self._box, self._server_clock, batch, ack)
            return result

        # Applied while the next batch is on the wire, when a pipeline runs.
        return batch, self.prefetch.later(apply) if self.prefetch is not None else apply()

    def _take(self, metered: bool) -> tuple[OutgoingBatch, Group | None] | None:
        """The next batch: fresh transactions first, the suspects set aside in turns."""
        isolation = self._isolation
        while True:
            group = isolation.turn()
            if group is None:
                batch = self.prefetch.claim(metered) if self.prefetch else None
                batch = batch or self._outbox.take_batch(metered=metered, skip=isolation.held())
                if batch is not None:
                    return batch, None
                if self.prefetch is not None and self.prefetch.settle():
                    continue  # the ack still being applied may have put entries back
                group = isolation.next_group()
                if group is None:
                    return None
            batch = self._outbox.take_transactions(group.tx_ids, metered=metered)
            if batch is not None:
                return batch, isolation.narrow(group, list(batch.tx_ids))
            isolation.drop(group)  # nothing of it is pending any more

    def _take_ordinary(self, metered: bool) -> OutgoingBatch | None:
        """The next ordinary batch (taken ahead only while no transaction is set aside)."""
        return self._outbox.take_batch(metered=metered)


def _check_ack(batch: OutgoingBatch, ack: Ack, channel: str) -> None:
    sent = list(batch.op_ids)
    answered = [r.op_id for r in ack.results]
    if ack.batch_id != batch.batch_id or answered != sent:
        raise AckMismatch(
            f"{channel}: the ack for batch {ack.batch_id} ({len(answered)} results) does not "
            f"answer batch {batch.batch_id} ({len(sent)} entries)",
            channel=channel,
            batch_id=batch.batch_id,
            device_id=batch.device_id,
        )


def _server_error(exc: BaseException, isolation: Isolation) -> str:
    """The parked verdict's message: the server's status and code, and the proof."""
    status = getattr(exc, "status", None)
    code = getattr(exc, "code", None) or "no error code"
    return (
        f"HTTP {status} {code}: the server failed on this transaction "
        f"{isolation.threshold} times in a row while it accepted other batches ({exc})"
    )


def describe(exc: SyncStopped) -> str:
    """One line on why syncing stopped: its code, then its message."""
    return f"{exc.code}: {exc}" if exc.code else str(exc)

"""SyncClient: record into the outbox, drain it through the channels, manage the data box."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.errors import ClientError, EntryInvalid, FieldsyncError
from protocol.model import KINDS, Ack, Kind
from protocol.registry import Registry, check_record_id, crm_registry

from ._batches import OutgoingBatch
from ._channels import Channel, ChannelSet
from ._clock import ServerClock, heal
from ._config import OutboxConfig
from ._databox import DataBox
from ._isolate import Group, Isolation
from ._outbox import Applied, Outbox
from ._prefetch import Prefetch
from ._reads import OutboxEntry, Reads
from ._recording import Tx
from ._retry import Backoff, OutOfTime, RetryPolicy
from ._states import State, check
from .errors import AckMismatch, OutboxError, SyncStopped, TransportError

#: meta key holding why syncing last stopped, for tools such as ``fieldsync status``.
STOPPED_KEY = "sync_stopped"

#: Default bound of one ``sync_now()`` call, in seconds of the client's monotonic clock.
SYNC_NOW_TIMEOUT = 60.0

#: Verdict code of a transaction parked by the client: the server kept failing on it.
SERVER_ERROR = "server_error"


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one drain pass did: batches acked, entries in them by verdict, what is left.

    ``remaining`` entries are still pending; ``last_error`` says why (None: drained);
    ``failures`` counts failed sends in this pass; ``timed_out`` is True when the pass
    ended at its time bound; ``held`` counts transactions set aside while the client
    isolates one the server keeps failing on (docs/client.md).
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
    def why(self) -> str | None:
        """One line on why entries remain (None when nothing does)."""
        if not self.remaining:
            return None
        cause = str(self.last_error) if self.last_error else "no failure recorded"
        bound = "timed out; " if self.timed_out else ""
        return f"{self.remaining} pending after {self.failures} failed sends: {bound}{cause}"


@dataclass(frozen=True, slots=True)
class SyncStatus:
    """The sync state an app shows: why it stopped, the last error, the channel in use."""

    stopped: str | None
    last_error: str | None
    channel: str
    failures: int
    running: bool


class _Halted(Exception):
    """Internal: stop() or close() asked the drain to end; never escapes the client."""


class SyncClient:
    """An app's handle on its outbox and sync loop; thread-safe; use as a context manager.

    ``record`` and ``transaction`` may be called from any thread while the background
    loop (``start``/``stop``) or ``sync_now`` drains. Transactions do not nest: opening
    one inside another on the same thread raises OutboxError. ``sleep=None`` (default)
    waits on an internal event, so ``stop()``/``close()`` cut a retry wait short; an
    injected ``sleep`` is called as is (tests record it); ``monotonic`` is the clock
    ``sync_now``'s bound and Retry-After are measured on. The client owns its channels
    and closes them on ``close()``.
    """

    def __init__(
        self,
        path: str | Path,
        key: bytes | str,
        *,
        device_id: str,
        channels: Sequence[Channel],
        registry: Registry | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], object] | None = None,
        rng: random.Random | None = None,
        config: OutboxConfig | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._channels = ChannelSet(channels)
        self._registry = registry if registry is not None else crm_registry()
        self._halt = threading.Event()
        self._wake = threading.Event()
        self._sleep: Callable[[float], object] = sleep if sleep is not None else self._halt.wait
        policy = retry or RetryPolicy()
        self._monotonic = monotonic
        self._backoff = Backoff(policy, self._channels, rng or random.Random(), monotonic)
        self._isolation = Isolation(policy.isolate_after)
        self._prefetch: Prefetch | None = None
        self._failures = 0
        # Stamps use the device clock corrected by the server's (see _clock.py).
        self._server_clock = ServerClock(clock)
        self._outbox = Outbox(
            path, key, device_id=device_id, clock=self._server_clock.now, config=config
        )
        self._reads = Reads(self._outbox.store)
        self._box = DataBox(self._outbox)
        self._server_clock.load(self._outbox.store)
        self._sync_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._crash: BaseException | None = None
        self._stopped: SyncStopped | None = None
        self._last_error: FieldsyncError | None = None
        self._closed = False

    @property
    def device_id(self) -> str:
        """The device this outbox belongs to."""
        return self._outbox.device_id

    @property
    def path(self) -> str:
        """The outbox file."""
        return self._outbox.path

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the loop, end any drain, close the outbox and the channels."""
        if self._closed:
            return
        try:
            self.stop()
        finally:
            self._halt.set()
            with self._sync_lock:
                self._closed = True
                self._outbox.close()
                self._channels.close()

    # -- recording ------------------------------------------------------------------

    def record(
        self,
        collection: str,
        record_id: str,
        fields: Mapping[str, Any],
        kind: Kind = "upsert",
    ) -> str:
        """Validate, stamp and durably store one change; return its op_id.

        Raises EntryInvalid before anything is written. Inside ``transaction()`` the
        change joins that transaction and is durable when the block exits.
        """
        self._check_open()
        normalized, version = self._validate(collection, record_id, fields, kind)

        def add(tx: Tx) -> str:
            return self._outbox.recorder.append(
                tx,
                collection=collection,
                record_id=record_id,
                kind=kind,
                fields=normalized,
                schema_version=version,
            )

        tx = self._outbox.recorder.current()
        if tx is not None:
            return add(tx)
        with self._outbox.recorder.transaction() as tx:
            op_id = add(tx)
        self._wake.set()
        return op_id

    @contextmanager
    def transaction(self) -> Iterator[str]:
        """Group records into one local transaction (one tx_id); yields the tx_id.

        An exception inside rolls every record of the block back (no seq is used up).
        """
        self._check_open()
        with self._outbox.recorder.transaction() as tx:
            yield tx.tx_id
        self._wake.set()

    # -- syncing ------------------------------------------------------------------

    def sync_now(self, timeout: float | None = SYNC_NOW_TIMEOUT) -> SyncReport:
        """Drain the outbox once, retrying per the policy, for at most ``timeout`` s.

        No wait is begun that would end past the bound; a send already on the wire
        finishes (the channel's own timeout bounds it). The report says what is
        still pending and why (``remaining``, ``last_error``, ``timed_out``).
        ``timeout=None`` drains with no bound, like the background loop.
        """
        self._check_open()
        if timeout is not None and not timeout > 0:
            raise ValueError("timeout must be > 0 (or None: no bound)")
        deadline = None if timeout is None else self._monotonic() + timeout
        # The background loop may hold the lock through a long retry: wait for it at
        # most ``timeout`` real seconds (a lock cannot wait on an injected clock).
        if not self._sync_lock.acquire(timeout=-1 if timeout is None else timeout):
            return self._report(timed_out=True, error=self._last_error_as_client())
        try:
            return self._drain(deadline)
        finally:
            self._sync_lock.release()

    def start(self, interval: float = 30.0) -> None:
        """Run the drain in a background thread: at once, on ``record``, every ``interval`` s."""
        self._check_open()
        if self._thread is not None:
            raise RuntimeError("the sync loop is already running")
        self._halt.clear()
        self._wake.set()
        self._thread = threading.Thread(
            target=self._loop, args=(interval,), name=f"fieldsync-sync-{self.device_id}"
        )
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the background loop and join it; re-raise what crashed it, if anything."""
        thread = self._thread
        if thread is None:
            return
        self._halt.set()
        self._wake.set()
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError(f"sync thread did not stop within {timeout} s")
        self._thread = None
        self._halt.clear()
        crash, self._crash = self._crash, None
        if crash is not None:
            raise crash

    def wake(self) -> None:
        """Ask the background loop for a pass now (e.g. when the network comes back)."""
        self._wake.set()

    def status(self) -> SyncStatus:
        """Why syncing stopped (if it did), the last error, the channel in use."""
        stopped = self._stopped
        last = self._last_error
        return SyncStatus(
            stopped=_describe(stopped) if stopped else None,
            last_error=str(last) if last else None,
            channel=self._channels.current.name,
            failures=self._backoff.failures,
            running=self._thread is not None and self._thread.is_alive(),
        )

    # -- the offline data box -------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Entry counts by state (every state present)."""
        self._check_open()
        return self._reads.stats()

    def parked(self) -> list[OutboxEntry]:
        """Every parked entry, oldest first, with the server's code/field/message."""
        self._check_open()
        return self._reads.parked()

    def entry(self, op_id: str) -> OutboxEntry:
        """The outbox entry with this op_id (raises UnknownEntry)."""
        self._check_open()
        return self._reads.entry(op_id)

    def entries(
        self, *, state: State | str | None = None, after_seq: int = 0, limit: int = 1000
    ) -> list[OutboxEntry]:
        """A page of outbox entries with seq > ``after_seq``, oldest first."""
        self._check_open()
        return self._reads.entries(state=state, after_seq=after_seq, limit=limit)

    def resubmit(self, op_id: str, fields: Mapping[str, Any] | None = None) -> str:
        """Send a parked entry again, with fixed ``fields`` (None: unchanged); new op_id.

        Parked entries of the same original transaction go with it as one new
        transaction. Raises EntryInvalid (nothing written) if ``fields`` are invalid.
        """
        self._check_open()
        current = self._reads.entry(op_id)
        check(current.state, State.RESUBMITTED, op_id=op_id)
        values = current.fields if fields is None else fields
        normalized, version = self._validate(
            current.collection, current.record_id, values, current.kind
        )
        new_id = self._box.resubmit(op_id, normalized, version, reason="resubmitted")
        self._wake.set()
        return new_id

    def discard(self, op_id: str, reason: str) -> None:
        """Give up a parked entry for good; an audit row keeps it and the reason."""
        self._check_open()
        self._box.discard(op_id, reason)

    def audit_log(self) -> list[dict[str, Any]]:
        """Every discard and resubmit, oldest first."""
        self._check_open()
        return self._reads.audit_log()

    # -- internals ----------------------------------------------------------------

    def _validate(
        self, collection: str, record_id: str, fields: Mapping[str, Any], kind: str
    ) -> tuple[dict[str, Any], int]:
        if kind not in KINDS:
            raise EntryInvalid("unknown_kind", None, f"kind {kind!r} is not one of {KINDS}")
        check_record_id(record_id)
        if not isinstance(fields, Mapping):
            raise EntryInvalid("wrong_type", None, "fields must be a mapping")
        normalized = self._registry.validate(collection, kind, fields)
        return normalized, self._registry.get(collection).schema_version

    def _drain(self, deadline: float | None = None) -> SyncReport:
        self._prefetch = Prefetch(self._take_ordinary, self._outbox.release)
        try:
            return self._drain_pass(deadline)
        finally:
            self._prefetch.close()
            self._prefetch = None

    def _drain_pass(self, deadline: float | None) -> SyncReport:
        batches = sent = applied = duplicate = conflict = parked = 0
        error: ClientError | None = None
        timed_out = False
        self._failures = 0
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
                error = last or self._last_error_as_client()
                break
            except TransportError as exc:
                error = exc
                self._last_error = exc
                break
            except SyncStopped as exc:
                error = exc
                self._last_error = exc
                self._stopped = exc
                self._outbox.store.set_meta(STOPPED_KEY, _describe(exc))
                break
            except _Halted:
                break
            if done is None:
                break
            batch, result = done
            batches += 1
            sent += len(batch)
            applied += result.applied
            duplicate += result.duplicate
            conflict += result.conflict
            parked += result.parked
        totals = (batches, sent, applied, duplicate, parked, conflict)
        return self._report(totals, error=error, timed_out=timed_out)

    def _report(
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
            failures=self._failures,
            timed_out=timed_out,
            held=self._isolation.held_count(),
        )

    def _last_error_as_client(self) -> ClientError | None:
        last = self._last_error
        return last if isinstance(last, ClientError) else None

    def _attempt(self, channel: Channel) -> tuple[OutgoingBatch, Applied] | None:
        """One try: take a batch, send it on ``channel``, apply the ack."""
        if self._halt.is_set():
            raise _Halted
        taken = self._take(channel.metered)
        if taken is None:
            return None
        batch, group = taken
        if group is None and self._isolation.idle() and self._prefetch is not None:
            self._prefetch.start(channel.metered)  # batch n+1 is taken while n is sent
        try:
            ack = channel.send(batch)
            _check_ack(batch, ack, channel.name)
        except Exception as exc:
            if self._prefetch is not None:
                self._prefetch.drop()
            self._failures += 1
            if isinstance(exc, FieldsyncError):
                self._last_error = exc  # shown by status() while the retry waits
            if self._isolation.failed(list(batch.tx_ids), group, exc):
                self._outbox.park(batch, SERVER_ERROR, _server_error(exc, self._isolation))
                return batch, Applied(parked=len(batch))
            self._outbox.release(batch)
            raise
        result = self._outbox.apply(batch, ack)
        self._isolation.succeeded(group)
        heal(self._box, self._server_clock, batch, ack)
        self._backoff.succeeded()
        self._last_error = None
        if self._stopped is not None:
            self._stopped = None
            self._outbox.store.set_meta(STOPPED_KEY, None)
        return batch, result

    def _take(self, metered: bool) -> tuple[OutgoingBatch, Group | None] | None:
        """The next batch: fresh transactions first, the suspects set aside in turns."""
        isolation = self._isolation
        while True:
            group = isolation.turn()
            if group is None:
                batch = self._prefetch.claim(metered) if self._prefetch else None
                batch = batch or self._outbox.take_batch(metered=metered, skip=isolation.held())
                if batch is not None:
                    return batch, None
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

    def _loop(self, interval: float) -> None:
        while not self._halt.is_set():
            self._wake.wait(interval)
            if self._halt.is_set():
                return
            self._wake.clear()
            if self._stopped is not None:
                continue  # paused until sync_now() gets through again
            try:
                with self._sync_lock:
                    self._drain()
            except FieldsyncError as exc:
                self._last_error = exc  # e.g. the disk: the next pass tries again
            except BaseException as exc:
                self._crash = exc  # a bug: end the loop, stop() re-raises it
                return

    def _check_open(self) -> None:
        if self._closed:
            raise OutboxError("this SyncClient is closed", path=self._outbox.path)


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


def _describe(exc: SyncStopped) -> str:
    return f"{exc.code}: {exc}" if exc.code else str(exc)

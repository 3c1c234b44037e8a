"""SyncClient: record into the outbox, drain it through the channels, manage the data box."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.errors import ClientError, FieldsyncError
from protocol.model import Kind
from protocol.registry import Registry, crm_registry

from . import _fixes as fixes
from ._boxview import BoxView, DataBoxCounts, DataBoxEntry, Receipt
from ._channels import Channel, ChannelSet
from ._clock import ServerClock
from ._commands import Commands
from ._config import OutboxConfig
from ._databox import DataBox
from ._drain import Drainer, SyncReport, describe
from ._isolate import Isolation
from ._journal import Journal
from ._outbox import Outbox
from ._pruning import Pruner
from ._reads import OutboxEntry, Reads
from ._reporting import JournaledChannel, Reporter
from ._retry import Backoff, RetryPolicy
from ._states import State
from ._storage import FreeSpace, StorageGuard, disk_free
from .errors import OutboxError, ServerBusy, SyncStopped

log = logging.getLogger("client_sync.journal")

#: Default bound of one ``sync_now()`` call, in seconds of the client's monotonic clock.
SYNC_NOW_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class SyncStatus:
    """The sync state an app shows: why it stopped, the last error, the channel in use."""

    stopped: str | None
    last_error: str | None
    channel: str
    failures: int
    running: bool


class SyncClient:
    """An app's handle on its outbox and sync loop; thread-safe; use as a context manager.

    ``record`` and ``transaction`` may be called from any thread while the background
    loop (``start``/``stop``) or ``sync_now`` drains. Transactions do not nest: opening
    one inside another on the same thread raises OutboxError. ``sleep=None`` (default)
    waits on an internal event, so ``stop()``/``close()`` cut a retry wait short; an
    injected ``sleep`` is called as is (tests record it); ``monotonic`` is the clock
    ``sync_now``'s bound and Retry-After are measured on. The client owns its channels
    and closes them on ``close()``. ``locale`` picks the language of data-box
    messages (``"en"``, ``"zh_Hans"``, or an OS tag such as ``"zh-Hans-CN"``; each
    call may override it); ``free_space`` is the storage check's probe (free bytes of
    a directory's filesystem), checked against ``config.min_free_bytes``.
    ``clock`` (the device's wall clock) also dates the journal's events;
    ``app_version`` is reported in them (``config`` also tunes reports and pruning).
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
        locale: str | None = None,
        free_space: FreeSpace = disk_free,
        app_version: str = "unknown",
    ) -> None:
        ChannelSet(channels)  # refuses an empty list or duplicate names before any file opens
        self.locale = locale
        self._registry = registry if registry is not None else crm_registry()
        self._halt = threading.Event()
        self._wake = threading.Event()
        self._sleep: Callable[[float], object] = sleep if sleep is not None else self._halt.wait
        policy = retry or RetryPolicy()
        self._monotonic = monotonic
        # Stamps use the device clock corrected by the server's (see _clock.py).
        self._server_clock = ServerClock(clock)
        self._outbox = Outbox(
            path, key, device_id=device_id, clock=self._server_clock.now, config=config
        )
        self._reads = Reads(self._outbox.store)
        self._box = DataBox(self._outbox)
        self._view = BoxView(self._outbox.store)
        self._storage = StorageGuard(
            self._outbox.path, self._outbox.config.min_free_bytes, free_space, monotonic
        )
        self._clock = clock
        self._server_clock.load(self._outbox.store)
        self._journal = Journal(self._outbox.store, clock)
        self._commands = Commands(self._box, self._journal, clock, self._registry)
        self._box.on_action = self._commands.on_action
        self._storage.on_refused = self._refused
        self._refusal = threading.local()  # a refusal inside transaction(): journaled after
        self._reporter = Reporter(
            self._outbox,
            self._journal,
            self._commands,
            self._view,
            clock=clock,
            free_bytes=self._storage.free,
            app_version=app_version,
        )
        self._pruner = Pruner(self._outbox, clock)
        self._channels = ChannelSet(JournaledChannel(c, self._reporter) for c in channels)
        self._sync_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._crash: BaseException | None = None
        self._backoff = Backoff(policy, self._channels, rng or random.Random(), monotonic)
        self._drainer = Drainer(
            self._box,
            self._backoff,
            Isolation(policy.isolate_after),
            self._server_clock,
            halt=self._halt,
            sleep=self._sleep,
            monotonic=monotonic,
        )
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

        Raises EntryInvalid before anything is written, and StorageLow (nothing
        written) when the disk's free space is under ``config.min_free_bytes``.
        Inside ``transaction()`` the change joins that transaction and is durable when
        the block exits (a refusal inside it rolls the whole block back).
        """
        self._check_open()
        self._storage.check()
        normalized, version = self._validate(collection, record_id, fields, kind)
        recorder = self._outbox.recorder
        tx = recorder.current()
        if tx is not None:
            return recorder.append(
                tx,
                collection=collection,
                record_id=record_id,
                kind=kind,
                fields=normalized,
                schema_version=version,
            )
        op_id = recorder.record_one(
            collection=collection,
            record_id=record_id,
            kind=kind,
            fields=normalized,
            schema_version=version,
        )
        if not self._wake.is_set():  # set() takes the event's lock even when it is set
            self._wake.set()
        return op_id

    @contextmanager
    def transaction(self) -> Iterator[str]:
        """Group records into one local transaction (one tx_id); yields the tx_id.

        An exception inside rolls every record of the block back (no seq is used up).
        """
        self._check_open()
        try:
            with self._outbox.recorder.transaction() as tx:
                yield tx.tx_id
        finally:
            free = getattr(self._refusal, "free", None)
            if free is not None:
                self._refusal.free = None
                self._note_refused(free)
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
            drainer = self._drainer
            return drainer.report(timed_out=True, error=drainer.last_error_as_client())
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

    def network_changed(self, channel: str, up: bool) -> None:
        """The OS reports ``channel`` went up or down: journal it; wake the loop when up."""
        self._check_open()
        if channel not in {c.name for c in self._channels.channels}:
            raise ValueError(f"no channel named {channel!r}")
        if self._journal.link(channel, bool(up), "os") and up:
            self._wake.set()

    def note_refused(self, free_bytes: int) -> None:
        """Journal a record refused for want of storage (the storage check calls it)."""
        self._check_open()
        self._journal.note_refused(free_bytes)

    def _refused(self, free_bytes: int) -> None:
        """The storage check's hook: journal the refusal, after the open block if any
        (its write transaction is this thread's; the refusal rolls it back)."""
        if self._outbox.recorder.current() is not None:
            self._refusal.free = free_bytes
            return
        self._note_refused(free_bytes)

    def _note_refused(self, free_bytes: int) -> None:
        """Journal a refusal; a journal that cannot be written never hides StorageLow."""
        try:
            self._journal.note_refused(free_bytes)
        except FieldsyncError as exc:
            log.warning("could not journal a refused record: %s", exc)

    def journal_events(self, *, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        """A page of the device journal (``n`` > ``after``), oldest first; see docs/client.md."""
        self._check_open()
        return self._journal.events(after=after, limit=limit)

    def command_log(self) -> list[dict[str, Any]]:
        """Every server command carried out on this device and still kept, with its outcome."""
        self._check_open()
        return self._commands.log()

    def prune(self) -> dict[str, int]:
        """Prune now what retention no longer keeps (the loop does it); rows per table."""
        self._check_open()
        return self._pruner.run(self._halt)

    def wake(self) -> None:
        """Ask the background loop for a pass now (e.g. when the network comes back)."""
        self._wake.set()

    def status(self) -> SyncStatus:
        """Why syncing stopped (if it did), the last error, the channel in use."""
        stopped = self._drainer.stopped
        last = self._drainer.last_error
        return SyncStatus(
            stopped=describe(stopped) if stopped else None,
            last_error=str(last) if last else None,
            channel=self._channels.current.name,
            failures=self._drainer.backoff_failures(),
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

    def resubmit(
        self, op_id: str, fields: Mapping[str, Any] | None = None, reason: str = "resubmitted"
    ) -> str:
        """Send a parked entry again, with fixed ``fields`` (None: unchanged); new op_id.

        Parked entries of the same original transaction go with it as one new
        transaction; each new entry's ``resubmit_of`` names its original. Raises
        EntryInvalid (nothing written) if ``fields`` are invalid. ``reason`` is audited.
        """
        self._check_open()
        new_id = fixes.resubmit(self._box, self._registry, op_id, fields, reason)
        self._wake.set()
        return new_id

    def discard(self, op_id: str, reason: str) -> None:
        """Give up a parked entry for good; an audit row keeps it and the reason."""
        self._check_open()
        self._box.discard(op_id, fixes.check_reason(reason))

    def audit_log(self) -> list[dict[str, Any]]:
        """Every discard and resubmit, oldest first."""
        self._check_open()
        return self._reads.audit_log()

    def databox(
        self,
        *,
        state: State | str | None = None,
        locale: str | None = None,
        after_seq: int = 0,
        limit: int = 1000,
    ) -> list[DataBoxEntry]:
        """Entries not yet acknowledged (pending, in flight, parked), oldest first, a page
        at a time, each with why it waits in the app's language (``locale``: this call's)."""
        self._check_open()
        return self._view.entries(
            locale=locale or self.locale,
            state=state,
            after_seq=after_seq,
            limit=limit,
            next_retry_at=self._next_retry_at(),
        )

    def databox_counts(self) -> DataBoxCounts:
        """Waiting entries by state; parked by reason; pending by last failure's reason."""
        self._check_open()
        return self._view.counts()

    def receipt(self, op_id: str) -> Receipt:
        """Where ``op_id`` is: queued, sent (when, on which channel), or the server's answer."""
        self._check_open()
        return self._view.receipt(op_id)

    def unsynced(self, collection: str, record_id: str) -> int:
        """Changes to this record not yet acknowledged (0: show it as synced)."""
        self._check_open()
        return self._view.unsynced(collection, record_id).get(record_id, 0)

    def unsynced_records(self, collection: str) -> dict[str, int]:
        """Records of ``collection`` with changes not yet acknowledged, and how many."""
        self._check_open()
        return self._view.unsynced(collection)

    def unsynced_count(self) -> int:
        """Every change not yet acknowledged (the app's "unsynced changes" badge)."""
        self._check_open()
        return self._view.waiting()

    # -- internals ----------------------------------------------------------------

    def _validate(
        self, collection: str, record_id: str, fields: Mapping[str, Any], kind: str
    ) -> tuple[dict[str, Any], int]:
        return fixes.validate(self._registry, collection, record_id, fields, kind)

    def _drain(self, deadline: float | None) -> SyncReport:
        """One drain pass; then a report-only batch if nothing was sent and one is due."""
        self._reporter.begin_pass()
        report = self._drainer.run(deadline)
        quiet = report.batches == 0 and report.last_error is None and not report.timed_out
        in_time = deadline is None or self._monotonic() < deadline
        if quiet and in_time and not self._halt.is_set() and self._reporter.due():
            try:
                ack = self._reporter.report_only(self._channels.current)
            except ServerBusy as exc:
                self._backoff.failed(exc)  # its Retry-After holds the next pass back too
            except ClientError:
                pass  # journaled; the next pass's entries meet it, with their retries
            else:
                if ack.server_time_ms is not None:
                    self._server_clock.observe(self._outbox.store, ack.server_time_ms)
        return report

    def _loop(self, interval: float) -> None:
        while not self._halt.is_set():
            self._wake.wait(interval)
            if self._halt.is_set():
                return
            self._wake.clear()
            if self._drainer.stopped is not None:
                continue  # paused until sync_now() gets through again
            try:
                with self._sync_lock:
                    self._drain(None)
                self._pruner.run(self._halt)
            except FieldsyncError as exc:
                self._drainer.last_error = exc  # e.g. the disk: the next pass tries again
            except BaseException as exc:
                self._crash = exc  # a bug: end the loop, stop() re-raises it
                return

    def _next_retry_at(self) -> float | None:
        """Wall-clock time of the next attempt after failures (None: none is waiting)."""
        due = self._backoff.next_try
        if due is None or self._backoff.failures == 0:
            return None
        return self._clock() + max(due - self._monotonic(), 0.0)

    def _check_open(self) -> None:
        if self._closed:
            raise OutboxError("this SyncClient is closed", path=self._outbox.path)


def _describe(exc: SyncStopped) -> str:
    return f"{exc.code}: {exc}" if exc.code else str(exc)

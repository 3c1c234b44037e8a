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

from protocol.errors import EntryInvalid, FieldsyncError
from protocol.model import KINDS, Kind
from protocol.reasons import Reason
from protocol.registry import Registry, check_record_id, crm_registry

from ._channels import Channel, ChannelSet
from ._clock import ServerClock
from ._config import OutboxConfig
from ._databox import DataBox
from ._drain import Drainer, SyncReport, describe
from ._failures import classify
from ._isolate import Isolation
from ._outbox import Outbox
from ._reads import OutboxEntry, Reads
from ._retry import Backoff, RetryPolicy
from ._states import State, check
from .errors import OutboxError, SyncStopped, TransportError

#: Default bound of one ``sync_now()`` call, in seconds of the client's monotonic clock.
SYNC_NOW_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class SyncStatus:
    """The sync state an app shows: why it stopped, the last error and its failure code."""

    stopped: str | None
    last_error: str | None
    channel: str
    failures: int
    running: bool
    reason: Reason | None = None


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
        self._drainer = Drainer(
            self._box,
            Backoff(policy, self._channels, rng or random.Random(), monotonic),
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

        Raises EntryInvalid before anything is written. Inside ``transaction()`` the
        change joins that transaction and is durable when the block exits.
        """
        self._check_open()
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
            drainer = self._drainer
            return drainer.report(timed_out=True, error=drainer.last_error_as_client())
        try:
            return self._drainer.run(deadline)
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
        stopped = self._drainer.stopped
        last = self._drainer.last_error
        return SyncStatus(
            stopped=describe(stopped) if stopped else None,
            last_error=str(last) if last else None,
            channel=self._channels.current.name,
            failures=self._drainer.backoff_failures(),
            running=self._thread is not None and self._thread.is_alive(),
            # A send's failure has a reason; another error (the disk) is not an attempt's.
            reason=classify(last) if isinstance(last, TransportError | SyncStopped) else None,
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
        if type(fields) is not dict and not isinstance(fields, Mapping):
            raise EntryInvalid("wrong_type", None, "fields must be a mapping")
        found = self._registry.get(collection)
        return found.validate(kind, fields), found.schema_version

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
                    self._drainer.run()
            except FieldsyncError as exc:
                self._drainer.last_error = exc  # e.g. the disk: the next pass tries again
            except BaseException as exc:
                self._crash = exc  # a bug: end the loop, stop() re-raises it
                return

    def _check_open(self) -> None:
        if self._closed:
            raise OutboxError("this SyncClient is closed", path=self._outbox.path)


def _describe(exc: SyncStopped) -> str:
    return f"{exc.code}: {exc}" if exc.code else str(exc)

"""Taking batch n+1 on a worker thread while batch n is on the wire (a one-deep pipeline).

Sends stay one at a time and in seq order: the next batch is only *taken* (moved to
in_flight, assembled from its stored bytes) while the current one is sent, and it is
sent only after the current one's ack was applied. When the current send fails, the
taken batch goes back to pending (``drop``), so retries, isolation (_isolate.py) and
channel switches see the queue exactly as without the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from protocol.errors import FieldsyncError

from ._batches import OutgoingBatch

#: take(metered) -> the next ordinary batch, or None.
Take = Callable[[bool], OutgoingBatch | None]


class Prefetch:
    """At most one batch taken ahead; released unless it is claimed."""

    def __init__(self, take: Take, release: Callable[[OutgoingBatch], None]) -> None:
        self._take = take
        self._release = release
        self._pool: ThreadPoolExecutor | None = None
        self._future: Future[OutgoingBatch | None] | None = None
        self._metered = False

    def start(self, metered: bool) -> None:
        """Begin taking the next batch for a channel that is (or is not) metered."""
        self.drop()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="fieldsync-take")
        self._metered = metered
        self._future = self._pool.submit(self._take, metered)

    def claim(self, metered: bool) -> OutgoingBatch | None:
        """The batch taken ahead for this kind of channel, or None (take one afresh)."""
        future, self._future = self._future, None
        if future is None:
            return None
        batch = future.result()  # the take's own error, if it failed, is raised here
        if batch is not None and metered != self._metered:
            self._release(batch)  # taken for the other channel's limits
            return None
        return batch

    def drop(self) -> None:
        """Put a batch taken ahead back to pending (the current send failed, or we stop)."""
        future, self._future = self._future, None
        if future is None:
            return
        try:
            batch = future.result()
        except FieldsyncError:
            return  # nothing was taken; the next take meets the same error and raises it
        if batch is not None:
            self._release(batch)

    def close(self) -> None:
        """Drop what was taken ahead and end the worker thread."""
        try:
            self.drop()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

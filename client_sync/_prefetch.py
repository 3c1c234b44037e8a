"""A one-deep pipeline around the channel's send, on one worker thread.

While batch n is on the wire the worker takes batch n+1 (moves it to in_flight,
assembles and compresses it); while batch n+1 is on the wire it applies batch n's
ack. Sends stay one at a time and in seq order: batch n+1 is sent only after batch
n's ack arrived. When a send fails, the batch taken ahead goes back to pending
(``drop``), so retries, isolation (_isolate.py) and channel switches see the queue
exactly as without the pipeline. At most one ack waits to be applied (``later``
first finishes the one before, raising its error); ``settle`` finishes it when the
queue looks empty (an ack being applied may put entries back: clock recovery).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from protocol.errors import FieldsyncError

from ._batches import OutgoingBatch

#: take(metered) -> the next ordinary batch, or None.
Take = Callable[[bool], OutgoingBatch | None]

T = TypeVar("T")


class Prefetch:
    """At most one batch taken ahead; released unless it is claimed."""

    def __init__(self, take: Take, release: Callable[[OutgoingBatch], None]) -> None:
        self._take = take
        self._release = release
        self._pool: ThreadPoolExecutor | None = None
        self._future: Future[OutgoingBatch | None] | None = None
        self._later: Future[object] | None = None
        self._metered = False

    def start(self, metered: bool) -> None:
        """Begin taking the next batch for a channel that is (or is not) metered."""
        self.drop()
        self._metered = metered
        self._future = self._worker().submit(self._take, metered)

    def later(self, job: Callable[[], T]) -> Future[T]:
        """Run ``job`` on the worker (after the one before it finished; its error raised)."""
        self.settle()
        future = self._worker().submit(job)
        self._later = future  # type: ignore[assignment]
        return future

    def settle(self) -> bool:
        """Finish the job handed to ``later``, raising its error; False if there was none."""
        job, self._later = self._later, None
        if job is None:
            return False
        job.result()
        return True

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

    def _worker(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="fieldsync-drain")
        return self._pool

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
        """Drop what was taken ahead, let a pending job finish, end the worker thread."""
        try:
            self.drop()
        finally:
            self._later = None
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

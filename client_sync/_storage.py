"""The storage check: before a record is accepted, is there room on the store's disk?

A device that fills its disk mid-write gets SQLite's "database or disk is full" at a
random moment, in the middle of someone's work. The floor turns that into a clear,
early refusal: StorageLow (reason ``storage_low``), raised before anything is
written, so nothing stored is touched. The probe is injectable (tests, platforms
with their own API); the default asks the filesystem the outbox lives on.

Asking costs a ``statvfs`` (tens of microseconds on a busy overlay filesystem, about
1 % of a record), so while the last answer was far above the floor (``HEADROOM``)
it is trusted for ``RECHECK_S`` seconds; near the floor every record asks. The floor
is the early, clear refusal; a disk filled faster than that by something else still
ends in SQLite's own "disk is full", which loses nothing committed.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from .errors import OutboxError, StorageLow

#: Free bytes above the floor beyond which the last answer is trusted for a while.
HEADROOM = 64 * 1024 * 1024
#: Seconds an answer with that headroom is trusted (the client's monotonic clock).
RECHECK_S = 1.0

#: Free bytes of the filesystem holding a directory.
FreeSpace = Callable[[str], int]


def disk_free(directory: str) -> int:
    """Free bytes for an unprivileged writer of ``directory``'s filesystem."""
    return shutil.disk_usage(directory).free


class StorageGuard:
    """Refuses a record when the store's filesystem has fewer than ``floor`` bytes free."""

    def __init__(
        self,
        path: str,
        floor: int,
        probe: FreeSpace = disk_free,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self._path = path
        self._monotonic = monotonic
        #: (free bytes, monotonic time) of the last answer with headroom.
        self._trusted: tuple[int, float] | None = None
        self._directory = str(Path(path).resolve().parent)
        self.floor = floor
        self._probe = probe
        #: Called with the free bytes on every refusal, before StorageLow is raised:
        #: SyncClient journals it (``Journal.note_refused``). The one call site.
        self.on_refused: Callable[[int], object] | None = None

    def free(self) -> int:
        """Free bytes where the store lives now (0 when the filesystem cannot tell)."""
        try:
            return max(int(self._probe(self._directory)), 0)
        except OSError:
            return 0

    def check(self) -> None:
        """Raise StorageLow if free space is under the floor (a floor of 0 never probes)."""
        if self.floor <= 0:
            return
        now = self._monotonic() if self._monotonic is not None else None
        if now is not None and self._trusted is not None and now - self._trusted[1] < RECHECK_S:
            return
        try:
            free = int(self._probe(self._directory))
        except OSError as exc:
            raise OutboxError(
                f"cannot tell the free space where {self._path} lives: {exc}", path=self._path
            ) from exc
        roomy = now is not None and free - self.floor > HEADROOM
        self._trusted = (free, now) if roomy and now is not None else None
        if free < self.floor:
            if self.on_refused is not None:
                self.on_refused(free)
            raise StorageLow(self._path, free, self.floor)

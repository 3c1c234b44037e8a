"""The storage check: before a record is accepted, is there room on the store's disk?

A device that fills its disk mid-write gets SQLite's "database or disk is full" at a
random moment, in the middle of someone's work. The floor turns that into a clear,
early refusal: StorageLow (reason ``storage_low``), raised before anything is
written, so nothing stored is touched. The probe is injectable (tests, platforms
with their own API); the default asks the filesystem the outbox lives on.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from .errors import OutboxError, StorageLow

#: Free bytes of the filesystem holding a directory.
FreeSpace = Callable[[str], int]


def disk_free(directory: str) -> int:
    """Free bytes for an unprivileged writer of ``directory``'s filesystem."""
    return shutil.disk_usage(directory).free


class StorageGuard:
    """Refuses a record when the store's filesystem has fewer than ``floor`` bytes free."""

    def __init__(self, path: str, floor: int, probe: FreeSpace = disk_free) -> None:
        self._path = path
        self._directory = str(Path(path).resolve().parent)
        self.floor = floor
        self._probe = probe
        #: JOURNAL HOOK (h9-journal): called with the free bytes on every refusal, before
        #: StorageLow is raised; wire ``Journal.note_refused`` here. The one call site.
        self.on_refused: Callable[[int], object] | None = None

    def check(self) -> None:
        """Raise StorageLow if free space is under the floor (a floor of 0 never probes)."""
        if self.floor <= 0:
            return
        try:
            free = int(self._probe(self._directory))
        except OSError as exc:
            raise OutboxError(
                f"cannot tell the free space where {self._path} lives: {exc}", path=self._path
            ) from exc
        if free < self.floor:
            if self.on_refused is not None:
                self.on_refused(free)
            raise StorageLow(self._path, free, self.floor)

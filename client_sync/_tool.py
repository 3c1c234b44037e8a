"""OutboxFile: an existing outbox opened by a tool (``fieldsync status``), not by the app."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from protocol.registry import Registry, crm_registry

from . import _fixes as fixes
from ._boxview import BoxView, DataBoxCounts, DataBoxEntry, Receipt
from ._databox import DataBox
from ._drain import STOPPED_KEY
from ._journal import Journal
from ._outbox import Outbox
from ._reads import OutboxEntry, Reads
from ._states import State


class OutboxFile:
    """An outbox opened by a tool: never created, in-flight entries left as they are."""

    def __init__(
        self, path: str | Path, key: bytes | str, *, registry: Registry | None = None
    ) -> None:
        self._outbox = Outbox(path, key, device_id=None, clock=time.time, recover=False)
        self._registry = registry if registry is not None else crm_registry()
        self._reads = Reads(self._outbox.store)
        self._view = BoxView(self._outbox.store)
        self._box = DataBox(self._outbox)
        self._box.on_action = Journal(self._outbox.store, time.time).on_action  # reported later
        self.path = self._outbox.path
        self.device_id = self._outbox.device_id

    def __enter__(self) -> OutboxFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file."""
        self._outbox.close()

    def stats(self) -> dict[str, int]:
        """Entry counts by state (every state present)."""
        return self._reads.stats()

    def parked(self) -> list[OutboxEntry]:
        """Every parked entry, oldest first."""
        return self._reads.parked()

    def audit_log(self) -> list[dict[str, Any]]:
        """Every discard and resubmit, oldest first."""
        return self._reads.audit_log()

    def stopped(self) -> str | None:
        """Why syncing last stopped (None: it did not)."""
        return self._outbox.store.get_meta(STOPPED_KEY)

    def discard(self, op_id: str, reason: str) -> None:
        """Give up a parked entry; audited."""
        self._box.discard(op_id, fixes.check_reason(reason))

    def resubmit(self, op_id: str, fields: dict[str, Any] | None, reason: str) -> str:
        """Record a parked entry again with ``fields`` (validated; None: unchanged); new op_id."""
        return fixes.resubmit(self._box, self._registry, op_id, fields, reason)

    def entry(self, op_id: str) -> OutboxEntry:
        """The entry with this op_id, in whatever state."""
        return self._reads.entry(op_id)

    def databox(
        self, *, locale: str | None = None, state: State | str | None = None
    ) -> list[DataBoxEntry]:
        """Every entry not yet acknowledged, oldest first, with localised reasons."""
        found: list[DataBoxEntry] = []
        after = 0
        while page := self._view.entries(locale=locale, state=state, after_seq=after):
            found.extend(page)
            after = page[-1].seq
        return found

    def databox_counts(self) -> DataBoxCounts:
        """Waiting entries by state; parked by reason; pending by last failure's reason."""
        return self._view.counts()

    def receipt(self, op_id: str) -> Receipt:
        """Where ``op_id`` is on its way to the server."""
        return self._view.receipt(op_id)

"""Wire messages as immutable values: Entry, Batch, Result, Ack."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["upsert", "patch", "delete"]
Status = Literal["applied", "duplicate", "rejected", "conflict"]

KINDS: tuple[Kind, ...] = ("upsert", "patch", "delete")
STATUSES: tuple[Status, ...] = ("applied", "duplicate", "rejected", "conflict")


@dataclass(frozen=True, slots=True)
class Entry:
    """One change a rep made; ``op_id`` is its idempotency key.

    ``tx_count`` is how many entries its local transaction holds, frozen when that
    transaction commits on the device: a batch must carry each transaction whole.
    """

    op_id: str
    device_id: str
    seq: int
    tx_id: str
    tx_count: int
    hlc: str
    collection: str
    record_id: str
    kind: Kind
    fields: dict[str, Any]
    schema_version: int


@dataclass(frozen=True, slots=True)
class Batch:
    """Whole transactions of one device, under one protocol version."""

    protocol_version: str
    batch_id: str
    device_id: str
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class Result:
    """The server's verdict on one entry; a duplicate carries the original verdict."""

    op_id: str
    status: Status
    code: str | None = None
    field: str | None = None
    message: str | None = None
    original: Result | None = None

    @property
    def outcome(self) -> Result:
        """The verdict that counts: the original one for a duplicate."""
        return self.original if self.original is not None else self


@dataclass(frozen=True, slots=True)
class Ack:
    """The server's answer to a batch: one result per entry, in batch order.

    ``server_time_ms`` is the server's clock when it answered (ms since the epoch):
    devices correct their HLC stamps by it (see docs/protocol.md, "Clocks").
    """

    batch_id: str
    results: tuple[Result, ...] = field(default_factory=tuple)
    server_time_ms: int | None = None

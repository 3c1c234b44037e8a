"""Wire messages as immutable values: Entry, Batch, Report (and its parts), Result, Ack."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["upsert", "patch", "delete"]
Status = Literal["applied", "duplicate", "rejected", "conflict"]

EventKind = Literal["link", "attempt", "status", "refused", "databox"]
LinkSource = Literal["sync", "os"]
BoxAction = Literal["discard", "resubmit"]
OutcomeStatus = Literal["done", "failed"]

KINDS: tuple[Kind, ...] = ("upsert", "patch", "delete")
STATUSES: tuple[Status, ...] = ("applied", "duplicate", "rejected", "conflict")
EVENT_KINDS: tuple[EventKind, ...] = ("link", "attempt", "status", "refused", "databox")
LINK_SOURCES: tuple[LinkSource, ...] = ("sync", "os")
BOX_ACTIONS: tuple[BoxAction, ...] = ("discard", "resubmit")
OUTCOME_STATUSES: tuple[OutcomeStatus, ...] = ("done", "failed")
#: The one code a ``refused`` event carries: the device refused a record for want of space.
REFUSED_CODES: tuple[str, ...] = ("storage_low",)


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
    report: Report | None = None


# -- the device's report (protocol 2.1): journal events, data box, command outcomes ----
#
# Every journal event has an ``id`` (unique per device: a replay is stored once),
# ``at_ms`` (the device's wall clock) and a ``kind``; the kind's own members follow.
# ``kind`` is a member with a fixed default so that the wire form stays flat.


@dataclass(frozen=True, slots=True)
class LinkEvent:
    """A channel went up or down, as the sync loop saw it or as the OS reported it."""

    id: str
    at_ms: int
    channel: str
    up: bool
    source: LinkSource
    kind: Literal["link"] = "link"


@dataclass(frozen=True, slots=True)
class AttemptEvent:
    """One sync attempt: when, on which channel, what it carried, how it ended.

    ``outcome`` is ``ok`` or a failure reason (protocol/reasons.py);
    ``server_time_ms`` is the ack's server time when one came back.
    """

    id: str
    at_ms: int
    channel: str
    started_ms: int
    ended_ms: int
    entries: int
    bytes_sent: int
    bytes_received: int
    outcome: str
    server_time_ms: int | None = None
    kind: Literal["attempt"] = "attempt"


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """The device's state now: queue depth, free storage, app and protocol version."""

    id: str
    at_ms: int
    queue_depth: int
    free_bytes: int
    app_version: str
    protocol_version: str
    kind: Literal["status"] = "status"


@dataclass(frozen=True, slots=True)
class RefusedEvent:
    """The device refused to record an entry (``storage_low``: too little free space)."""

    id: str
    at_ms: int
    code: str
    free_bytes: int
    kind: Literal["refused"] = "refused"


@dataclass(frozen=True, slots=True)
class DataboxEvent:
    """A parked entry was discarded or resubmitted (by the rep, or by a command)."""

    id: str
    at_ms: int
    action: BoxAction
    op_id: str
    reason: str
    new_op_id: str | None = None
    command_id: str | None = None
    kind: Literal["databox"] = "databox"


Event = LinkEvent | AttemptEvent | StatusEvent | RefusedEvent | DataboxEvent


@dataclass(frozen=True, slots=True)
class DataboxCounts:
    """Entries not yet acknowledged, by state."""

    pending: int
    in_flight: int
    parked: int


@dataclass(frozen=True, slots=True)
class ParkedEntry:
    """One parked entry as the data box shows it; ``age_s`` since it was recorded."""

    op_id: str
    collection: str
    record_id: str
    code: str
    message: str
    age_s: int


@dataclass(frozen=True, slots=True)
class Databox:
    """The device's data box now: counts by state, parked counts by reason, parked entries."""

    counts: DataboxCounts
    reasons: dict[str, int]
    parked: tuple[ParkedEntry, ...]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How the device carried out one command (``new_op_id`` of a resubmitted entry)."""

    command_id: str
    status: OutcomeStatus
    code: str | None = None
    message: str | None = None
    new_op_id: str | None = None


@dataclass(frozen=True, slots=True)
class Report:
    """What a batch tells the server about its device; ``sent_ms`` is the device's clock
    when it assembled the batch (the server corrects device times by it)."""

    sent_ms: int
    journal: tuple[Event, ...]
    databox: Databox
    outcomes: tuple[Outcome, ...]


@dataclass(frozen=True, slots=True)
class Command:
    """An admin's order to a device about one parked entry; carried out at most once."""

    command_id: str
    kind: BoxAction
    op_id: str
    reason: str


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
    ``commands`` are every command the device has not yet reported done or failed
    (protocol 2.1; left off the wire when there are none).
    """

    batch_id: str
    results: tuple[Result, ...] = field(default_factory=tuple)
    server_time_ms: int | None = None
    commands: tuple[Command, ...] = ()

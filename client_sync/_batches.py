"""Packing batches: whole transactions, oldest first, assembled from the stored bytes.

The next batch is chosen from a bounded window (``seq, tx_id, size`` of at most
max_entries + 1 pending rows): whole transactions, oldest first, while they fit the
channel's entry limit and the byte limit; a transaction too big for the channel's
limit goes alone. ``size`` is the length of the entry's stored bytes, so the batch's
byte count (``protocol.codec.batch_size``) is known without loading it, and it is
exactly the count of the bytes that are sent: the batch is assembled from those
bytes (``protocol.codec.assemble_batch``), never decoded and re-encoded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from uuid6 import uuid7

from protocol.codec import assemble_batch, compress

#: A result row (SQLAlchemy's Row generics differ between 2.0 and 2.1).
Row = Any


@dataclass(frozen=True, slots=True)
class OutgoingBatch:
    """A batch as it goes on the wire: its canonical bytes and what the client needs back.

    ``op_ids`` are the entries in order (an ack answers them in that order), ``seqs``
    their rows' seqs; ``tx_ids`` the transactions in order, each once. ``body`` is the
    uncompressed canonical JSON; ``gzipped`` the same bytes as they go on the wire
    (compressed when the batch is taken, so a batch taken ahead is compressed while
    the one before it is sent).
    """

    batch_id: str
    device_id: str
    protocol_version: str
    op_ids: tuple[str, ...]
    tx_ids: tuple[str, ...]
    body: bytes
    gzipped: bytes
    seqs: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.op_ids)

    def keys(self) -> list[tuple[int, str]]:
        """(seq, op_id) of each entry, in order: how the outbox moves them."""
        return list(zip(self.seqs, self.op_ids, strict=True))


def assemble(protocol_version: str, device_id: str, rows: Sequence[Row]) -> OutgoingBatch:
    """A new batch (fresh batch id) of ``rows`` (``seq, op_id, tx_id, body``), in order."""
    batch_id = str(uuid7())
    body = assemble_batch(protocol_version, batch_id, device_id, [r.body for r in rows])
    return OutgoingBatch(
        batch_id=batch_id,
        device_id=device_id,
        protocol_version=protocol_version,
        op_ids=tuple(r.op_id for r in rows),
        seqs=tuple(r.seq for r in rows),
        tx_ids=tuple(dict.fromkeys(r.tx_id for r in rows)),
        body=body,
        gzipped=compress(body),
    )


def group(rows: Iterable[Row]) -> list[list[Row]]:
    """Split seq-ordered rows into runs of one tx_id."""
    groups: list[list[Row]] = []
    for row in rows:
        if groups and groups[-1][-1].tx_id == row.tx_id:
            groups[-1].append(row)
        else:
            groups.append([row])
    return groups


def fit(groups: list[list[Row]], limit: int, overhead: int, max_bytes: int) -> list[Row]:
    """The first groups, whole, within ``limit`` entries and ``max_bytes`` (at least one)."""
    chosen: list[Row] = []
    size = overhead
    for run in groups:
        run_size = sum(r.size for r in run) + len(run)  # each entry and its comma
        if chosen and (len(chosen) + len(run) > limit or size + run_size > max_bytes):
            break
        chosen.extend(run)
        size += run_size
    return chosen

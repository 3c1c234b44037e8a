"""Test doubles for code that embeds client_sync (like httpx.MockTransport): no network.

``ScriptedChannel`` is a Channel that follows a script of failures before answering
through a ``FakeServer``, an in-memory stand-in that keeps the server's promises the
client relies on: one verdict per op_id, replayed as ``duplicate``; a transaction
with a refused entry refused whole; every batch wire-valid (round-tripped through
the codec) and never splitting a transaction (it raises AssertionError otherwise).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from protocol.codec import decode_ack, decode_batch, encode_ack, encode_batch
from protocol.model import Ack, Batch, Entry, Result

from .errors import LinkFailure

#: A script step: an exception to raise before the server sees the batch; "lost" (the
#: server applies the batch, the answer never arrives: LinkFailure); "crash" (the
#: server applies it, then SimulatedCrash); or a callable answering the batch.
Step = BaseException | str | Callable[[Batch], Ack]


class SimulatedCrash(BaseException):
    """The process dying mid-send: a BaseException, so nothing on the way catches it."""


def _name_is_bad(entry: Entry) -> bool:
    return str(entry.fields.get("name", "")).startswith("BAD")


@dataclass
class FakeServer:
    """An idempotent in-memory server; ``bad(entry)`` decides which entries it refuses."""

    bad: Callable[[Entry], bool] = _name_is_bad
    verdicts: dict[str, Result] = field(default_factory=dict)
    batches: list[Batch] = field(default_factory=list)
    _tx_members: dict[str, frozenset[str]] = field(default_factory=dict)

    def answer(self, batch: Batch) -> Ack:
        """Apply ``batch`` and return its ack (duplicates carry the first verdict)."""
        batch = decode_batch(encode_batch(batch))
        self.batches.append(batch)
        known = {e.op_id for e in batch.entries if e.op_id in self.verdicts}
        by_tx: dict[str, list[Entry]] = {}
        for entry in batch.entries:
            by_tx.setdefault(entry.tx_id, []).append(entry)
        for tx_id, members in by_tx.items():
            ops = frozenset(e.op_id for e in members)
            if self._tx_members.setdefault(tx_id, ops) != ops:
                raise AssertionError(f"transaction {tx_id} was split across batches")
            self._judge([e for e in members if e.op_id not in self.verdicts])
        results = tuple(
            Result(e.op_id, "duplicate", original=self.verdicts[e.op_id])
            if e.op_id in known
            else self.verdicts[e.op_id]
            for e in batch.entries
        )
        return decode_ack(encode_ack(Ack(batch.batch_id, results)))

    def applied(self) -> set[str]:
        """op_ids the server applied."""
        return {op for op, r in self.verdicts.items() if r.status == "applied"}

    def _judge(self, fresh: list[Entry]) -> None:
        spoiled = any(self.bad(e) for e in fresh)
        for e in fresh:
            if not spoiled:
                self.verdicts[e.op_id] = Result(e.op_id, "applied")
            elif self.bad(e):
                self.verdicts[e.op_id] = Result(
                    e.op_id, "rejected", "invalid", "name", "name is refused"
                )
            else:
                self.verdicts[e.op_id] = Result(
                    e.op_id, "rejected", "transaction_aborted", None, "another entry failed"
                )


class ScriptedChannel:
    """A Channel that plays ``script`` (then ``forever``, if set) before answering normally."""

    def __init__(
        self,
        name: str,
        server: FakeServer,
        *,
        metered: bool = False,
        script: list[Step] | None = None,
        forever: Step | None = None,
    ) -> None:
        self.name = name
        self.metered = metered
        self.server = server
        self.script: list[Step] = list(script or [])
        self.forever = forever
        self.batches: list[Batch] = []
        self.closed = False

    def send(self, batch: Batch) -> Ack:
        """Play the next step of the script."""
        self.batches.append(batch)
        step = self.script.pop(0) if self.script else self.forever
        if step is None:
            return self.server.answer(batch)
        if isinstance(step, BaseException):
            raise step
        if step == "lost":
            self.server.answer(batch)
            raise LinkFailure(f"{self.name}: the answer was lost", channel=self.name)
        if step == "crash":
            self.server.answer(batch)
            raise SimulatedCrash
        if isinstance(step, str):
            raise ValueError(f"unknown script step {step!r}")
        return step(batch)

    def close(self) -> None:
        """Mark the channel closed (SyncClient.close closes its channels)."""
        self.closed = True


class FakeClock:
    """Wall-clock seconds that advance by ``step`` on every read."""

    def __init__(self, start: float = 1_700_000_000.0, step: float = 0.001) -> None:
        self.now = start
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now

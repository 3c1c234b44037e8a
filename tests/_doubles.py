"""Test doubles that cannot drift from the server: every answer comes from the real one.

``RealServer`` is the real ``server_sync.create_app()`` on a SQLite file, reached in
process through ``httpx.WSGITransport`` by a real ``client_sync.HttpChannel``: no
sockets, and no second implementation of the server's verdicts to keep in step.
``ScriptedChannel`` wraps such a channel and plays a script of link failures first
(an exception before the server sees the batch, a lost answer, a crash mid-send);
the batch then goes through to the real server. ``Offline`` is a link that never
reaches anyone, for tests that never sync.

The client records with ``lenient_registry()``, an app build a little older than the
server (simulations.rep.app_registry): ``BAD`` fields pass on the device and the real
server refuses them (``too_long`` on ``notes``; their siblings ``tx_rejected``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from client_sync import HttpChannel, OutgoingBatch
from client_sync.errors import LinkFailure
from protocol.codec import assemble_batch, compress, decode_batch, encode_entry
from protocol.constants import PROTOCOL_VERSION
from protocol.model import Ack, Entry
from protocol.registry import Registry
from server_sync import add_device, create_app
from server_sync.extension import server_state
from server_sync.models import devices, ops
from simulations.rep import app_registry

#: Fields of a customer that the device accepts and the real server refuses.
BAD: dict[str, Any] = {"name": "BAD", "notes": "x" * 2001}
#: What the server answers for such an entry, and for the rest of its transaction.
BAD_VERDICT = ("too_long", "notes")
SIBLING_CODE = "tx_rejected"

#: A script step: an exception to raise before the server sees the batch; "lost" (the
#: server applies the batch, the answer never arrives: LinkFailure); "crash" (the
#: server applies it, then SimulatedCrash); or a callable answering the batch.
Step = BaseException | str | Callable[[OutgoingBatch], Ack]


def entries_of(batch: OutgoingBatch) -> tuple[Entry, ...]:
    """The entries a batch's bytes hold, decoded as the server decodes them."""
    return decode_batch(batch.body).entries


def outgoing(
    entries: tuple[Entry, ...], batch_id: str = "batch-1", version: str = PROTOCOL_VERSION
) -> OutgoingBatch:
    """A batch of hand-made entries, as the outbox would hand it to a channel."""
    device_id = entries[0].device_id
    return OutgoingBatch(
        batch_id=batch_id,
        device_id=device_id,
        protocol_version=version,
        op_ids=tuple(e.op_id for e in entries),
        seqs=tuple(e.seq for e in entries),
        tx_ids=tuple(dict.fromkeys(e.tx_id for e in entries)),
        body=(
            body := assemble_batch(version, batch_id, device_id, [encode_entry(e) for e in entries])
        ),
        gzipped=compress(body),
    )


def lenient_registry() -> Registry:
    """The client's registry: accepts ``BAD`` entries that the server refuses."""
    return app_registry()


class SimulatedCrash(BaseException):
    """The process dying mid-send: a BaseException, so nothing on the way catches it."""


class FakeTime:
    """A monotonic clock that moves only when the client sleeps; sleeps are recorded."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        """Record the wait and move the clock past it."""
        self.sleeps.append(seconds)
        self.now += seconds


class FakeClock:
    """Wall-clock seconds that advance by ``step`` on every read."""

    def __init__(self, start: float = 1_700_000_000.0, step: float = 0.001) -> None:
        self.now = start
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@dataclass(frozen=True)
class Enrolled:
    """A device enrolled on the real server."""

    device_id: str
    token: str


class RealServer:
    """The real sync server on a SQLite file, driven in process (httpx.WSGITransport)."""

    def __init__(self, path: Path, **config: Any) -> None:
        self.app = create_app({"DATABASE_URL": f"sqlite:///{path}", **config})
        self.engine = server_state(self.app).engine

    def enrol(self, name: str = "rep") -> Enrolled:
        """Enrol a device, as ``fieldsync-server devices add`` does."""
        with self.engine.begin() as conn:
            return Enrolled(*add_device(conn, name))

    def enrol_as(self, device_id: str, name: str = "rep") -> Enrolled:
        """Enrol a device under a given id (an outbox made elsewhere names its device)."""
        made = self.enrol(name)
        with self.engine.begin() as conn:
            conn.execute(
                devices.update().where(devices.c.id == made.device_id).values(id=device_id)
            )
        return Enrolled(device_id, made.token)

    def transport(self) -> httpx.WSGITransport:
        """An httpx transport into the app."""
        return httpx.WSGITransport(app=self.app)

    def channel(
        self,
        device: Enrolled,
        name: str = "wifi",
        *,
        metered: bool = False,
        transport: httpx.BaseTransport | None = None,
    ) -> HttpChannel:
        """A real HttpChannel for ``device`` into the app."""
        return HttpChannel(
            name,
            "http://fieldsync.test",
            device.token,
            metered=metered,
            transport=transport or self.transport(),
        )

    def verdicts(self, device: Enrolled) -> dict[str, str]:
        """op_id -> status of every entry the server stored for ``device``."""
        query = sa.select(ops.c.op_id, ops.c.status).where(ops.c.device_id == device.device_id)
        with self.engine.connect() as conn:
            return {op_id: status for op_id, status in conn.execute(query)}

    def applied(self, device: Enrolled) -> set[str]:
        """op_ids of ``device`` the server applied."""
        return {op for op, status in self.verdicts(device).items() if status == "applied"}

    def close(self) -> None:
        """Release the database."""
        self.engine.dispose()


class ScriptedChannel:
    """Plays ``script`` (then ``forever``, if set) before passing batches to ``inner``."""

    def __init__(
        self,
        inner: HttpChannel,
        *,
        script: list[Step] | None = None,
        forever: Step | None = None,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.metered = inner.metered
        self.script: list[Step] = list(script or [])
        self.forever = forever
        self.batches: list[OutgoingBatch] = []
        self.closed = False
        self._sent = threading.Condition()

    def send(self, batch: OutgoingBatch) -> Ack:
        """Play the next step of the script; with none left, deliver to the server."""
        with self._sent:
            self.batches.append(batch)
            self._sent.notify_all()
        step = self.script.pop(0) if self.script else self.forever
        if step is None:
            return self.inner.send(batch)
        if isinstance(step, BaseException):
            raise step
        if step == "lost":
            self.inner.send(batch)
            raise LinkFailure(f"{self.name}: the answer was lost", channel=self.name)
        if step == "crash":
            self.inner.send(batch)
            raise SimulatedCrash
        if isinstance(step, str):
            raise ValueError(f"unknown script step {step!r}")
        return step(batch)

    def wait_for_batches(self, count: int, timeout: float = 30.0) -> None:
        """Block until ``count`` batches were handed to ``send`` (the bound only ends a hang)."""
        with self._sent:
            reached = self._sent.wait_for(lambda: len(self.batches) >= count, timeout)
        assert reached, f"{self.name}: {len(self.batches)} of {count} batches after {timeout} s"

    def close(self) -> None:
        """Close the real channel (SyncClient.close closes its channels)."""
        self.closed = True
        self.inner.close()


class Offline:
    """A link that never reaches the server: for tests that record but do not sync."""

    metered = False

    def __init__(self, name: str = "wifi") -> None:
        self.name = name

    def send(self, batch: OutgoingBatch) -> Ack:
        """Fail as a dead network does."""
        raise LinkFailure(f"{self.name}: offline", channel=self.name)

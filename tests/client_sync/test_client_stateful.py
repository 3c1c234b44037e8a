"""The outbox as a state machine against a plain-list model (Hypothesis, fixed seed).

Rules record (alone or in transactions, some refused by the server), abort a
transaction, sync through a link that works, is down, loses the ack, or kills the
process mid-send, reopen, resubmit and discard. After every step the encrypted
outbox must hold exactly the model's entries, in seq order, gap-free, each in the
model's state. The server is the real one (one per module, a device per example).
"""

from __future__ import annotations

import random
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from client_sync import OutboxConfig, RetryPolicy, State, SyncClient
from client_sync.errors import LinkFailure
from tests._doubles import (
    BAD,
    FakeClock,
    RealServer,
    ScriptedChannel,
    SimulatedCrash,
    lenient_registry,
)

KEY = bytes(range(32))


class Abort(Exception):
    pass


@dataclass
class Op:
    op_id: str
    tx_id: str
    bad: bool
    state: str = "pending"


class OutboxMachine(RuleBasedStateMachine):
    server: RealServer  # set by the module fixture below

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="fieldsync-outbox-"))
        self.device = self.server.enrol()
        self.clock = FakeClock()
        self.model: list[Op] = []
        self.records = 0
        self.client = self._open()

    def _open(self) -> SyncClient:
        self.channel = ScriptedChannel(self.server.channel(self.device))
        return SyncClient(
            self.dir / "outbox.db",
            KEY,
            device_id=self.device.device_id,
            channels=[self.channel],
            registry=lenient_registry(),
            clock=self.clock,
            sleep=lambda seconds: None,
            rng=random.Random(0),
            retry=RetryPolicy(max_attempts=1),
            config=OutboxConfig(max_entries=4, max_metered_entries=2),
        )

    def teardown(self) -> None:
        self.client.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def pending(self) -> list[Op]:
        return [op for op in self.model if op.state == "pending"]

    def parked(self) -> list[Op]:
        return [op for op in self.model if op.state == "parked"]

    # -- recording ------------------------------------------------------------------

    @rule(size=st.integers(1, 4), bad_at=st.none() | st.integers(0, 3))
    def record(self, size: int, bad_at: int | None) -> None:
        ops = []
        with self.client.transaction() as tx_id:
            for i in range(size):
                self.records += 1
                fields = BAD if i == bad_at else {"name": "ok"}
                # record ids are unique per device: examples share the server
                record_id = f"{self.device.device_id}-{self.records}"
                op_id = self.client.record("customers", record_id, fields)
                ops.append(Op(op_id, tx_id, i == bad_at))
        self.model.extend(ops)

    @rule(size=st.integers(1, 3))
    def record_then_abort(self, size: int) -> None:
        try:
            with self.client.transaction():
                for i in range(size):
                    self.client.record("customers", f"x{i}", {"name": "ok"})
                raise Abort
        except Abort:
            pass

    # -- syncing --------------------------------------------------------------------

    @rule()
    def sync(self) -> None:
        due = self.pending()
        spoiled = {op.tx_id for op in due if op.bad}
        report = self.client.sync_now()
        for op in due:
            op.state = "parked" if op.tx_id in spoiled else "acked"
        assert report.last_error is None and report.remaining == 0
        assert report.parked == sum(op.tx_id in spoiled for op in due)
        assert report.applied + report.duplicate == len(due) - report.parked

    @rule(step=st.sampled_from(["down", "lost"]))
    def sync_fails(self, step: str) -> None:
        self.channel.script = [LinkFailure("down") if step == "down" else "lost"]
        report = self.client.sync_now()
        self.channel.script = []
        if self.pending():
            assert isinstance(report.last_error, LinkFailure)
            assert report.remaining == len(self.pending())

    @rule()
    def crash_mid_send(self) -> None:
        self.channel.script = ["crash"]
        if self.pending():
            try:
                self.client.sync_now()
            except SimulatedCrash:
                pass
            else:  # pragma: no cover
                raise AssertionError("the crash did not happen")
            assert self.client.stats()["in_flight"] > 0
        self.client.close()  # the process is gone; nothing moved its rows
        self.client = self._open()

    @rule()
    def reopen(self) -> None:
        self.client.close()
        self.client = self._open()

    # -- the offline data box ---------------------------------------------------------

    @precondition(lambda self: bool(self.parked()))
    @rule(data=st.data(), fix=st.booleans())
    def resubmit(self, data: st.DataObject, fix: bool) -> None:
        target = data.draw(st.sampled_from(self.parked()))
        new_id = self.client.resubmit(target.op_id, {"name": "fixed"} if fix else None)
        new_tx = self.client.entry(new_id).tx_id
        group = [op for op in self.parked() if op.tx_id == target.tx_id]
        for op in group:
            op.state = "resubmitted"
            replacement = new_id if op is target else self.client.entry(op.op_id).replaced_by
            assert replacement is not None
            self.model.append(Op(replacement, new_tx, op.bad and not (op is target and fix)))

    @precondition(lambda self: bool(self.parked()))
    @rule(data=st.data())
    def discard(self, data: st.DataObject) -> None:
        target = data.draw(st.sampled_from(self.parked()))
        self.client.discard(target.op_id, "rep gave up")
        target.state = "discarded"

    # -- what must always hold --------------------------------------------------------

    @invariant()
    def outbox_matches_model(self) -> None:
        counts = Counter(op.state for op in self.model)
        assert self.client.stats() == {s.value: counts.get(s.value, 0) for s in State}
        rows = self.client.entries(limit=10_000)
        assert [r.op_id for r in rows] == [op.op_id for op in self.model]
        assert [r.state for r in rows] == [op.state for op in self.model]
        assert [r.seq for r in rows] == list(range(1, len(self.model) + 1))

    @invariant()
    def the_server_never_applied_a_refused_or_unacked_entry(self) -> None:
        applied = self.server.applied(self.device)
        acked = {op.op_id for op in self.model if op.state == "acked"}
        assert acked <= applied
        refused = {op.op_id for op in self.model if op.state in ("parked", "discarded")}
        assert not refused & applied


@pytest.fixture(autouse=True, scope="module")
def _one_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One real server for every example; each example enrols its own device."""
    server = RealServer(tmp_path_factory.mktemp("stateful") / "server.db")
    OutboxMachine.server = server
    yield
    server.close()


OutboxMachine.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestOutbox = OutboxMachine.TestCase

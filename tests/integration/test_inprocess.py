"""The real client against the real create_app() in one process (httpx WSGITransport)."""

from __future__ import annotations

import random
import string
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import sqlalchemy as sa
from flask import Flask

from client_sync import HttpChannel, OutboxConfig, RetryPolicy, SyncClient
from client_sync.errors import AuthRejected, LinkFailure, ServerBusy, UpgradeRequired
from protocol import Ack, Batch, Collection, FieldSpec, crm_registry
from protocol.constants import MAX_STRING_LENGTH
from protocol.fieldtypes import String
from server_sync import add_device, create_app, get_record, revoke_device
from server_sync import views as server_views
from server_sync.extension import server_state
from server_sync.models import ops
from simulations.procs import free_port
from simulations.rep import app_registry

NO_WAIT = RetryPolicy(max_attempts=6)


@dataclass
class Setup:
    app: Flask
    device_id: str
    token: str
    tmp: Path
    sleeps: list[float]

    @property
    def engine(self) -> sa.Engine:
        return server_state(self.app).engine

    def channel(self, name: str = "wifi", **kw: object) -> HttpChannel:
        return HttpChannel(name, "http://server", self.token,
                           transport=httpx.WSGITransport(app=self.app), **kw)  # type: ignore[arg-type]  # fmt: skip

    def client(self, channels: list[object] | None = None, **kw: object) -> SyncClient:
        kw.setdefault("retry", NO_WAIT)
        return SyncClient(
            self.tmp / "outbox.db", b"k" * 32, device_id=self.device_id,
            channels=channels or [self.channel()], sleep=self.sleeps.append,
            **kw,  # type: ignore[arg-type]
        )  # fmt: skip

    def stored(self) -> list[sa.Row[tuple[str, str]]]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(ops.c.op_id, ops.c.status).order_by(ops.c.seq)))


def make_setup(tmp: Path, registry: object = None, **config: object) -> Setup:
    app = create_app(
        {"DATABASE_URL": f"sqlite:///{tmp / 'server.db'}", "REGISTRY": registry, **config}
    )
    with server_state(app).engine.begin() as conn:
        device_id, token = add_device(conn, "rep")
    return Setup(app, device_id, token, tmp, [])


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    s = make_setup(tmp_path)
    yield s
    s.engine.dispose()


def test_recorded_entries_reach_the_server_once_with_normalised_fields(setup: Setup) -> None:
    with setup.client() as client:
        client.record("customers", "c1", {"name": "Wang Fang", "phone": "+86 139-1234-5678"})
        with client.transaction():
            client.record("customers", "c2", {"name": "Li Na"})
            client.record("leads", "l1", {"name": "Li Na", "customer_id": "c2", "score": 7})
        client.record("customers", "c1", {"notes": "prefers mornings"}, kind="patch")
        report = client.sync_now()
        assert (report.applied, report.remaining) == (4, 0)
        assert client.stats()["acked"] == 4
    with setup.engine.connect() as conn:
        c1 = get_record(conn, "customers", "c1")
        assert c1 is not None
        assert (c1["phone"], c1["notes"]) == ("13912345678", "prefers mornings")
        assert get_record(conn, "leads", "l1") is not None
    assert [row.status for row in setup.stored()] == ["applied"] * 4


class LosesAcks:
    """A channel whose first answers are lost on the way back: the server did apply."""

    def __init__(self, inner: HttpChannel, lose: int) -> None:
        self.inner, self.lose = inner, lose
        self.name, self.metered = inner.name, inner.metered

    def send(self, batch: Batch) -> Ack:
        ack = self.inner.send(batch)
        if self.lose:
            self.lose -= 1
            raise LinkFailure("connection reset after the request was sent")
        return ack

    def close(self) -> None:
        self.inner.close()


def test_a_lost_ack_is_retried_and_answered_as_duplicate_not_applied_twice(setup: Setup) -> None:
    with setup.client([LosesAcks(setup.channel(), lose=2)]) as client:
        op_ids = [client.record("customers", f"c{i}", {"name": f"n{i}"}) for i in range(5)]
        report = client.sync_now()
        assert report.remaining == 0
        assert setup.sleeps == [3.0, 30.0]
        entries = client.entries(state="acked")
    assert [e.op_id for e in entries] == op_ids
    assert {e.status for e in entries} == {"duplicate"}
    assert [row.op_id for row in setup.stored()] == op_ids  # stored once each


def test_a_rejected_transaction_is_parked_and_does_not_block_the_rest(setup: Setup) -> None:
    with setup.client(registry=app_registry()) as client:
        first = client.record("customers", "ok1", {"name": "a"})
        with client.transaction():
            bad = client.record("customers", "bad", {"name": "b", "notes": "x" * 2001})
            sibling = client.record("customers", "sib", {"name": "c"})
        last = client.record("customers", "ok2", {"name": "d"})
        report = client.sync_now()
        assert (report.applied, report.parked, report.remaining) == (2, 2, 0)
        parked = {p.op_id: p for p in client.parked()}
    assert set(parked) == {bad, sibling}
    assert (parked[bad].code, parked[bad].field) == ("too_long", "notes")
    assert parked[sibling].code == "tx_rejected"
    statuses = dict((row.op_id, row.status) for row in setup.stored())
    assert statuses == {first: "applied", bad: "rejected", sibling: "rejected", last: "applied"}
    with setup.engine.connect() as conn:
        assert get_record(conn, "customers", "sib") is None  # all-or-nothing


def test_an_unknown_schema_version_stops_sync_and_keeps_every_entry(tmp_path: Path) -> None:
    newer = crm_registry()
    customers = newer.get("customers")
    newer.register(Collection("customers", customers.fields, schema_version=2))
    s = make_setup(tmp_path, registry=newer)
    with s.client() as client:
        client.record("customers", "c1", {"name": "a"})
        report = client.sync_now()
        assert isinstance(report.last_error, UpgradeRequired)
        assert client.stats()["pending"] == 1
        assert "upgrade" in (client.status().stopped or "").lower()
    assert s.stored() == []
    s.engine.dispose()


def test_an_old_protocol_version_is_refused_then_delivered_after_the_upgrade(
    setup: Setup,
) -> None:
    with setup.client(config=OutboxConfig(protocol_version="1.0")) as client:
        client.record("customers", "c1", {"name": "a"})
        report = client.sync_now()
        assert isinstance(report.last_error, UpgradeRequired)
        assert client.stats()["pending"] == 1
    assert setup.stored() == []
    with setup.client() as client:  # the same outbox, opened by the upgraded app
        assert client.sync_now().applied == 1
    assert len(setup.stored()) == 1


def test_a_revoked_device_is_refused_and_its_outbox_untouched(setup: Setup) -> None:
    with setup.client() as client:
        client.record("customers", "c1", {"name": "a"})
        assert client.sync_now().applied == 1
        with setup.engine.begin() as conn:
            revoke_device(conn, setup.device_id)
        client.record("customers", "c2", {"name": "b"})
        report = client.sync_now()
        assert isinstance(report.last_error, AuthRejected)
        assert client.stats()["pending"] == 1
        assert client.stats()["acked"] == 1
    assert len(setup.stored()) == 1  # the revoked device's data already there stays


def test_a_dead_wifi_falls_back_to_cellular_after_3s_30s(setup: Setup) -> None:
    dead = HttpChannel("wifi", f"http://127.0.0.1:{free_port()}", setup.token, timeout=2.0)
    cellular = setup.channel("cellular", metered=True)
    with setup.client([dead, cellular]) as client:
        for i in range(3):
            client.record("customers", f"c{i}", {"name": "n"})
        report = client.sync_now()
        assert (report.applied, report.remaining) == (3, 0)
        assert client.status().channel == "cellular"
        client.record("customers", "later", {"name": "n"})
        assert client.sync_now().applied == 1  # straight out on cellular, no new waits
    assert setup.sleeps == [3.0, 30.0]


def test_a_shed_batch_waits_out_the_retry_after_and_stays_pending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server's rate-limit clock stands still: on the wall clock, a second boundary
    # between the two 429s changed Retry-After by one, and the wait asserted below
    # (from the first 429) no longer equalled the last error's (the second 429).
    frozen = SimpleNamespace(time=lambda: 1_800_000_000.25, perf_counter=time.perf_counter)
    monkeypatch.setattr(server_views, "time", frozen)
    s = make_setup(tmp_path, RATE_LIMIT_DEVICE=1, RATE_LIMIT_WINDOW=3600)
    with s.client(retry=RetryPolicy(max_attempts=2)) as client:
        for t in range(6):  # 600 entries: two batches, the second over the limit
            with client.transaction():
                for i in range(100):
                    client.record("customers", f"c{t}-{i}", {"name": "n"})
        report = client.sync_now(timeout=None)
        assert isinstance(report.last_error, ServerBusy)
        retry_after = report.last_error.retry_after
        assert retry_after is not None and retry_after >= 1
        assert s.sleeps == [max(3.0, retry_after)]
        assert (report.applied, client.stats()["pending"]) == (500, 100)
    assert len(s.stored()) == 500
    s.engine.dispose()


def test_an_incompressible_full_batch_still_fits_on_the_wire(tmp_path: Path) -> None:
    registry = crm_registry()
    registry.register(Collection("photos", {"blob": FieldSpec(String(MAX_STRING_LENGTH))}))
    s = make_setup(tmp_path, registry=registry)
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits
    with s.client(registry=registry) as client:
        for i in range(450):  # ~4.5 MB of random text: batches fill MAX_BATCH_BYTES
            blob = "".join(rng.choices(alphabet, k=MAX_STRING_LENGTH))
            client.record("photos", f"p{i}", {"blob": blob})
        report = client.sync_now()
        assert report.last_error is None
        assert (report.applied, report.remaining, report.batches) == (450, 0, 2)
    s.engine.dispose()

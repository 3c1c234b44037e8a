"""One entry the server keeps failing on never wedges a device (issue 7, item 2).

A real server process fails every batch holding one specific entry: a trigger on its
database raises for that record_id, so the request fails through the server's real
error path (500 ``internal``). The client must deliver everything else, park the
poison's transaction as ``server_error`` once other batches got through, and park
nothing when no request gets through at all. Sleeps are recorded on a fake clock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from client_sync import HttpChannel, RetryPolicy, State, SyncClient
from client_sync.errors import LinkFailure, ServerBusy
from server_sync import create_app
from simulations.procs import LiveServer, free_port, scratch_schema, server_cli, server_process
from tests._doubles import FakeTime

KEY = b"p" * 32

SQLITE_TRIGGER = """
CREATE TRIGGER poison BEFORE INSERT ON ops WHEN NEW.record_id LIKE 'poison%'
BEGIN SELECT RAISE(ABORT, 'poisoned entry'); END
"""

PG_TRIGGER = (
    """
    CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF left(NEW.record_id, 6) = 'poison' THEN
            RAISE EXCEPTION 'poisoned entry';
        END IF;
        RETURN NEW;
    END $$
    """,
    "CREATE TRIGGER poison BEFORE INSERT ON ops FOR EACH ROW EXECUTE FUNCTION poison()",
)


def client_for(
    tmp: Path, device_id: str, channel: HttpChannel, clock: FakeTime, **kw: object
) -> SyncClient:
    return SyncClient(
        tmp / "outbox.db", KEY, device_id=device_id, channels=[channel],
        sleep=clock.sleep, monotonic=clock, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.fixture
def log(tmp_path: Path) -> Iterator[Path]:
    """The server's output; printed at teardown (pytest shows it when the test fails)."""
    path = tmp_path / "server.log"
    yield path
    if path.exists():
        print(path.read_text(errors="replace"))


@pytest.fixture
def sqlite_server(tmp_path: Path, log: Path) -> Iterator[LiveServer]:
    """A server process on SQLite whose database refuses ops with record_id poison*."""
    url = f"sqlite:///{tmp_path / 'server.db'}"
    server_cli("db", "upgrade", database_url=url)
    with sqlite3.connect(tmp_path / "server.db") as db:
        db.execute(SQLITE_TRIGGER)
    with server_process(url, log=log) as server:
        yield server


@pytest.fixture
def pg_server(pg_url: str, log: Path) -> Iterator[LiveServer]:
    """A server process on a scratch PostgreSQL schema with a plpgsql poison trigger."""
    with scratch_schema(pg_url, prefix="fs_poison") as url:
        engine = sa.create_engine(url)
        try:
            with engine.begin() as conn:
                for statement in PG_TRIGGER:
                    conn.exec_driver_sql(statement)
        finally:
            engine.dispose()
        with server_process(url, log=log) as server:
            yield server


def drop_trigger(server: LiveServer) -> None:
    engine = sa.create_engine(server.database_url)
    try:
        with engine.begin() as conn:
            on = " ON ops" if engine.dialect.name == "postgresql" else ""
            conn.exec_driver_sql(f"DROP TRIGGER poison{on}")
    finally:
        engine.dispose()


def record_queue(client: SyncClient) -> tuple[list[str], list[str], list[str]]:
    """40 good transactions with two poisoned ones among them; (good, poison-1 tx, poison-2)."""
    good: list[str] = []
    first: list[str] = []
    second: list[str] = []
    for t in range(40):
        if t == 3:
            with client.transaction():  # the sibling goes down with it: all-or-nothing
                first.append(client.record("customers", "poison-1", {"name": "P"}))
                first.append(client.record("customers", "sibling-1", {"name": "S"}))
        if t == 27:
            second.append(client.record("leads", "poison-2", {"name": "Q"}))
        with client.transaction():
            good += [client.record("customers", f"c{t}-{i}", {"name": "n"}) for i in range(3)]
    return good, first, second


def check_poison_isolated(server: LiveServer, tmp: Path) -> None:
    device = server.enrol("poisoned-rep")
    clock = FakeTime()
    wifi = HttpChannel("wifi", server.url, device.token)
    small = RetryPolicy(max_wait=60.0)
    with client_for(tmp, device.device_id, wifi, clock, retry=small) as client:
        good, first, second = record_queue(client)
        report = client.sync_now(timeout=24 * 3600.0)
        assert report.last_error is None, report.why
        assert (report.remaining, report.held, report.timed_out) == (0, 0, False)
        assert [row.op_id for row in server.ops(device.device_id)] == good
        parked = {e.op_id: e for e in client.parked()}
        assert set(parked) == set(first + second)
        for entry in parked.values():
            assert entry.code == "server_error"
            assert entry.message is not None and entry.message.startswith("HTTP 500 internal")
        assert client.stats()[State.PARKED] == 3
        assert len(clock.sleeps) < 60  # halving, not one try per transaction

        # The operator fixes the server; the rep resubmits one and discards the other.
        drop_trigger(server)
        new_id = client.resubmit(first[0])
        client.discard(second[0], "duplicate of a lead entered on the web")
        report = client.sync_now()
        assert (report.applied, report.remaining) == (2, 0)  # the poison and its sibling
        stored = {row.op_id: row.status for row in server.ops(device.device_id)}
        assert stored[new_id] == "applied" and len(stored) == len(good) + 2
        assert client.entry(second[0]).state == State.DISCARDED
        assert [a["action"] for a in client.audit_log()] == ["resubmit", "resubmit", "discard"]


def test_sqlite_one_poisoned_entry_is_parked_and_everything_else_delivered(
    sqlite_server: LiveServer, tmp_path: Path
) -> None:
    check_poison_isolated(sqlite_server, tmp_path)


def test_postgresql_one_poisoned_entry_is_parked_and_everything_else_delivered(
    pg_server: LiveServer, tmp_path: Path
) -> None:
    check_poison_isolated(pg_server, tmp_path)


def test_a_lone_failing_transaction_waits_for_proof_before_it_is_parked(
    sqlite_server: LiveServer, tmp_path: Path
) -> None:
    device = sqlite_server.enrol("lone-rep")
    clock = FakeTime()
    wifi = HttpChannel("wifi", sqlite_server.url, device.token)
    with client_for(tmp_path, device.device_id, wifi, clock) as client:
        poison = client.record("customers", "poison-9", {"name": "P"})
        for _ in range(3):  # passes: the strikes outlive each one
            report = client.sync_now(timeout=600.0)
            assert report.timed_out and isinstance(report.last_error, ServerBusy)
            assert report.last_error.status == 500 and report.remaining == 1
        assert report.held == 1  # set aside after 3 strikes, but nothing proves it guilty
        assert client.parked() == []
        good = client.record("customers", "c1", {"name": "G"})
        report = client.sync_now(timeout=600.0)
        assert (report.applied, report.parked, report.remaining) == (1, 1, 0)
        assert [e.op_id for e in client.parked()] == [poison]
        assert [row.op_id for row in sqlite_server.ops(device.device_id)] == [good]


def test_a_stopped_server_parks_nothing_and_the_bound_holds(
    sqlite_server: LiveServer, tmp_path: Path
) -> None:
    device = sqlite_server.enrol("offline-rep")
    port = free_port()  # nothing listens here: as if the server process had stopped
    clock = FakeTime()
    wifi = HttpChannel("wifi", f"http://127.0.0.1:{port}", device.token)
    with client_for(tmp_path, device.device_id, wifi, clock) as client:
        ids = [client.record("customers", f"c{i}", {"name": "n"}) for i in range(5)]
        for _ in range(4):
            start = clock.now
            report = client.sync_now(timeout=60.0)
            assert clock.now - start <= 60.0  # no wait begun that would end past the bound
            assert report.timed_out and isinstance(report.last_error, LinkFailure)
            assert (report.remaining, report.parked, report.held) == (5, 0, 0)
        assert client.stats()[State.PENDING] == 5 and client.parked() == []
        assert "pending after" in (report.why or "")
    assert sqlite_server.ops(device.device_id) == []
    assert ids  # every entry still waits in the outbox


def test_a_server_whose_database_is_down_answers_503_and_nothing_is_parked(
    tmp_path: Path,
) -> None:
    dead = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/gone"
    app = create_app({"DATABASE_URL": dead})
    clock = FakeTime()
    wifi = HttpChannel("wifi", "http://server", "t" * 43, transport=httpx.WSGITransport(app=app))
    with client_for(tmp_path, "dev-down", wifi, clock) as client:
        for t in range(4):
            with client.transaction():
                client.record("customers", f"c{t}", {"name": "n"})
        for _ in range(5):  # 503 does not count toward K: no halving, nothing parked
            report = client.sync_now(timeout=3600.0)
            assert isinstance(report.last_error, ServerBusy)
            assert report.last_error.status == 503 and report.last_error.code == "unavailable"
            assert (report.remaining, report.parked, report.held) == (4, 0, 0)
        assert report.failures > 3
        assert client.parked() == []

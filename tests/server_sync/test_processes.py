"""Real server processes on 127.0.0.1: the serve command, two servers racing, gunicorn."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from conflict import Hlc
from protocol import PROTOCOL_VERSION, Ack, Batch, Entry, compress, decode_ack, encode_batch
from server_sync import add_device, create_engine, get_record, upgrade
from simulations.procs import free_port
from tests.server_sync.conftest import PYTHON, ServerProcess

pytestmark = pytest.mark.slow

Spawn = Callable[..., ServerProcess]


def _enrol(url: str) -> tuple[str, str]:
    engine = create_engine(url)
    try:
        upgrade(engine)
        with engine.begin() as conn:
            return add_device(conn, "phone")
    finally:
        engine.dispose()


def _batch(device_id: str, round_: int) -> Batch:
    def entry(i: int, tx: str, **over: object) -> Entry:
        values: dict[str, object] = {
            "op_id": f"r{round_}-op{i}",
            "device_id": device_id,
            "seq": round_ * 100 + i,
            "tx_id": f"r{round_}-{tx}",
            "tx_count": 2 if tx in ("t1", "t2") else 1,
            "hlc": str(Hlc(1_700_000_000_000 + round_, i, device_id)),
            "collection": "customers",
            "record_id": f"r{round_}-c{i}",
            "kind": "upsert",
            "fields": {"name": f"Customer {round_}.{i}"},
            "schema_version": 1,
        }
        values.update(over)
        return Entry(**values)  # type: ignore[arg-type]

    entries = (
        entry(1, "t1"),
        entry(2, "t1"),
        entry(3, "t2", fields={"name": "x" * 101}),  # rejects t2
        entry(4, "t2"),
        entry(5, "t3", record_id="shared", fields={"name": f"Round {round_}"}),
    )
    return Batch(PROTOCOL_VERSION, f"batch-{round_}", device_id, entries)


def _post(base_url: str, token: str, batch: Batch) -> httpx.Response:
    return httpx.post(
        f"{base_url}/v1/batches",
        content=compress(encode_batch(batch)),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
        timeout=20,
    )


def _at_once(base_urls: list[str], token: str, batch: Batch) -> list[httpx.Response]:
    """POST ``batch`` to every server at the same instant (a barrier releases the threads)."""
    barrier = threading.Barrier(len(base_urls))
    answers: dict[int, httpx.Response] = {}

    def send(i: int) -> None:
        barrier.wait(timeout=10)
        answers[i] = _post(base_urls[i], token, batch)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(base_urls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return [answers[i] for i in range(len(base_urls))]


def _serve(spawn: Spawn, url: str) -> ServerProcess:
    port = free_port()
    argv = [PYTHON, "-m", "server_sync.cli", "serve", "--port", str(port), "--database-url", url]
    return spawn(argv, {}, port)


def test_the_serve_command_serves_an_embedded_sqlite_file(spawn: Spawn, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'embedded.db'}"
    device_id, token = _enrol(url)
    server = _serve(spawn, url)

    first = _post(server.base_url, token, _batch(device_id, 1))
    again = _post(server.base_url, token, _batch(device_id, 1))

    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "application/json"
    acked = decode_ack(first.content)
    assert [r.status for r in acked.results] == [
        "applied",
        "applied",
        "rejected",
        "rejected",
        "applied",
    ]
    assert [r.original for r in decode_ack(again.content).results] == list(acked.results)
    missing = httpx.get(f"{server.base_url}/nowhere", timeout=5)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


@pytest.mark.postgres
def test_two_servers_given_the_same_batch_at_once_apply_it_once(
    spawn: Spawn, pg_schema_url: str
) -> None:
    device_id, token = _enrol(pg_schema_url)
    servers = [_serve(spawn, pg_schema_url), _serve(spawn, pg_schema_url)]
    rounds = 6

    for round_ in range(1, rounds + 1):
        answers = _at_once([s.base_url for s in servers], token, _batch(device_id, round_))
        assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
        acks: list[Ack] = [decode_ack(a.content) for a in answers]
        for one, two in zip(acks[0].results, acks[1].results, strict=True):
            assert one.outcome == two.outcome
            assert sorted([one.status == "duplicate", two.status == "duplicate"]) == [
                False,
                True,
            ], (one, two)
        assert [r.outcome.status for r in acks[0].results] == [
            "applied",
            "applied",
            "rejected",
            "rejected",
            "applied",
        ]

    engine = create_engine(pg_schema_url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(sa.text("SELECT op_id, count(*) FROM ops GROUP BY op_id")).all()
            assert len(stored) == rounds * 5
            assert {count for _, count in stored} == {1}
            assert get_record(conn, "customers", "shared") == {
                "name": f"Round {rounds}",
                "phone": None,
                "email": None,
                "address": None,
                "notes": None,
            }
            assert get_record(conn, "customers", "r1-c3") is None
            assert get_record(conn, "customers", "r1-c1") is not None
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_gunicorn_with_two_workers_serves_postgres(spawn: Spawn, pg_schema_url: str) -> None:
    device_id, token = _enrol(pg_schema_url)
    port = free_port()
    server = spawn(
        [PYTHON, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "server_sync.wsgi:app"],
        {"FIELDSYNC_DATABASE_URL": pg_schema_url},
        port,
    )

    for _ in range(10):
        health = httpx.get(f"{server.base_url}/healthz", timeout=5)
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
    first = _post(server.base_url, token, _batch(device_id, 1))
    second = _post(server.base_url, token, _batch(device_id, 1))

    assert first.status_code == 200, first.text
    assert [r.outcome for r in decode_ack(second.content).results] == list(
        decode_ack(first.content).results
    )
    assert {r.status for r in decode_ack(second.content).results} == {"duplicate"}

"""`fieldsync-server serve` keeps connections alive and says which database it uses; gunicorn
refuses to start without one."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from client_sync import HttpChannel, SyncClient
from simulations.procs import HOST, LiveServer, free_port, server_process
from simulations.proxy import FaultProxy, ProxyLoop
from tests.server_sync.conftest import PYTHON

KEY = bytes(range(32))


@pytest.fixture
def served(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[LiveServer, Path]]:
    """A real ``serve`` process on a SQLite file, and the file its stderr goes to."""
    log = tmp_path / "serve.log"
    try:
        with server_process(sqlite_url, log=log) as server:
            yield server, log
    except BaseException:
        print(log.read_text(errors="replace") if log.exists() else "(no server log)")
        raise


@pytest.fixture
def counted(served: tuple[LiveServer, Path]) -> Iterator[FaultProxy]:
    """A relay in front of the server that counts the TCP connections it accepts."""
    server, _ = served
    port = int(server.url.rsplit(":", 1)[1])
    with ProxyLoop() as loop:
        yield loop.add(FaultProxy("count", (HOST, port)))


def test_requests_over_one_client_share_one_connection(counted: FaultProxy) -> None:
    with httpx.Client(base_url=f"http://{HOST}:{counted.port}", timeout=10) as client:
        answers = [client.get("/healthz") for _ in range(5)]
        answers.append(client.post("/v1/batches", content=b"{}"))  # 401, still kept alive
    assert [a.status_code for a in answers] == [200] * 5 + [401]
    assert all(a.headers.get("connection", "").lower() != "close" for a in answers)
    assert counted.counters.connections == 1


def test_a_device_sends_every_batch_over_one_connection(
    served: tuple[LiveServer, Path], counted: FaultProxy, tmp_path: Path
) -> None:
    server, _ = served
    device = server.enrol("keepalive-rep")
    wifi = HttpChannel("wifi", f"http://{HOST}:{counted.port}", device.token)
    with SyncClient(tmp_path / "o.db", KEY, device_id=device.device_id, channels=[wifi]) as c:
        for t in range(3):
            with c.transaction():
                for i in range(250):  # 750 entries: two batches of whole transactions
                    c.record("customers", f"c{t}-{i}", {"name": "n"})
        report = c.sync_now()
    assert (report.applied, report.remaining, report.batches) == (750, 0, 2)
    assert counted.counters.connections == 1


def test_stalled_clients_hold_no_worker_thread(
    served: tuple[LiveServer, Path], tmp_path: Path
) -> None:
    server, _ = served
    port = int(server.url.rsplit(":", 1)[1])
    head = b"POST /v1/batches HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{"
    stalls = [socket.create_connection((HOST, port), timeout=10) for _ in range(200)]
    try:
        for i, sock in enumerate(stalls):  # half stop inside the headers, half in the body
            sock.sendall(head if i % 2 else head[:30])
        device = server.enrol("beside-stalls")
        wifi = HttpChannel("wifi", server.url, device.token, timeout=30)
        with SyncClient(tmp_path / "o.db", KEY, device_id=device.device_id, channels=[wifi]) as c:
            with c.transaction():
                for i in range(5):
                    c.record("customers", f"c{i}", {"name": "n"})
            report = c.sync_now()
        health = httpx.get(f"{server.url}/healthz", timeout=30)
    finally:
        for sock in stalls:
            sock.close()
    assert (report.applied, report.remaining) == (5, 0), report
    assert health.status_code == 200


def test_serve_logs_its_database(served: tuple[LiveServer, Path], sqlite_url: str) -> None:
    _, log = served
    assert f"database: {sqlite_url}" in log.read_text()


@pytest.mark.postgres
def test_serve_logs_its_postgres_database_with_the_password_hidden(
    pg_schema_url: str, tmp_path: Path
) -> None:
    # trust auth on the test server: any password is accepted, so one can be shown hidden
    url = sa.make_url(pg_schema_url).set(password="s3cret-pw")
    text = url.render_as_string(hide_password=False)
    log = tmp_path / "serve.log"
    with server_process(text, log=log):
        pass
    logged = log.read_text()
    assert "s3cret-pw" not in logged, logged
    assert f"database: {url.render_as_string(hide_password=True)}" in logged


def _gunicorn(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = [
        PYTHON, "-m", "gunicorn", "--workers", "2", "--bind", f"{HOST}:{free_port()}",
        "--no-control-socket", "server_sync.wsgi:app",
    ]  # fmt: skip
    return subprocess.run(
        argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )


def test_gunicorn_without_a_database_url_refuses_to_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "FIELDSYNC_DATABASE_URL"}
    done = _gunicorn(tmp_path, env)
    # 4 ("App failed to load."), or 1 when both workers fail at once and gunicorn's
    # master trips over its own halt; either way it stops, with our one line.
    assert done.returncode in (1, 4), done.stderr
    assert_refused(done.stderr)
    assert "server_sync/wsgi.py" not in done.stderr  # our message, not our traceback


def test_gunicorn_with_a_blank_database_url_refuses_to_start(tmp_path: Path) -> None:
    done = _gunicorn(tmp_path, {**os.environ, "FIELDSYNC_DATABASE_URL": "  "})
    assert done.returncode in (1, 4), done.stderr
    assert_refused(done.stderr)


def assert_refused(stderr: str) -> None:
    """The refusal says what is missing and what to set it to."""
    assert "FIELDSYNC_DATABASE_URL is not set" in stderr, stderr
    assert "FIELDSYNC_DATABASE_URL=postgresql+psycopg://" in stderr
    assert "Booting worker" in stderr  # it was gunicorn that refused, not the command line
